//! Turning arbitrary values into JSON for a call's inputs and output, on the calling thread.
//!
//! The choice is made at compile time by autoref specialisation, so `#[weave::op]` puts no
//! bounds on the user's types: a value with a ref (a [`Model`](crate::Model), through the
//! [`CaptureRef`] hook) is recorded as its ref, a `serde::Serialize` value as its JSON, a
//! `Debug` value as its debug text, anything else as its type name. Errors are recorded as
//! `{type, message, traceback}` using, in order, `std::error::Error` (the source chain becomes
//! the traceback), `Display`, `Debug`. Whether a return value is a `Result` is decided the same
//! way ([`SplitResult`]), so a `Result` behind a type alias is still recognised.
//!
//! The choice is made where the op is defined, from what the compiler knows there: a concrete
//! type by everything it implements, a generic parameter or `impl Trait` argument by its
//! declared bounds only (`T: Debug` is captured as Debug text even when the caller passes a
//! `Serialize` type). `#[weave::op(serialize(arg))]` adds a `Serialize` bound to such an
//! argument and captures it as JSON ([`serialize`]).

use std::fmt::{Debug, Display};

use serde::Serialize;
use serde_json::Value;

use crate::record::Exception;

/// Borrowed value under capture; the number of `&` in front of it picks the strategy.
#[doc(hidden)]
pub struct Wrap<'a, T: ?Sized>(pub &'a T);

/// Values recorded as a ref rather than their content (models implement it).
#[doc(hidden)]
pub trait CaptureRef {
    /// The value's ref, as a JSON string (publishing the value if needed).
    fn __weave_capture_ref(&self) -> Value;
}

/// An op's return value split for recording: a `Result` into its `Ok` value or its error.
/// Implemented for `&Wrap<Result<T, E>>`; everything else falls back to [`SplitValue`]. The
/// macro calls `(&&Wrap(out)).__weave_split()`.
#[doc(hidden)]
pub trait SplitResult {
    /// The `Ok` type.
    type Ok;
    /// The `Err` type.
    type Err;
    fn __weave_split(&self) -> Result<&Self::Ok, &Self::Err>;
}
impl<T, E> SplitResult for &Wrap<'_, Result<T, E>> {
    type Ok = T;
    type Err = E;
    fn __weave_split(&self) -> Result<&T, &E> {
        self.0.as_ref()
    }
}

/// Any other return value: always an output.
#[doc(hidden)]
pub trait SplitValue {
    /// The value's type.
    type Ok: ?Sized;
    fn __weave_split(&self) -> Result<&Self::Ok, &std::convert::Infallible>;
}
impl<T: ?Sized> SplitValue for Wrap<'_, T> {
    type Ok = T;
    fn __weave_split(&self) -> Result<&T, &std::convert::Infallible> {
        Ok(self.0)
    }
}

/// A value captured as its JSON, for arguments named in `#[weave::op(serialize(...))]`.
#[doc(hidden)]
pub fn serialize<T: Serialize + ?Sized>(value: &T) -> Value {
    <&&Wrap<'_, T> as CaptureSerialize>::__weave_capture(&&&Wrap(value))
}

/// Highest priority: a value with a ref (a model) is recorded as the ref of its version.
#[doc(hidden)]
pub trait CaptureModel {
    fn __weave_capture(&self) -> Value;
}
impl<T: CaptureRef + ?Sized> CaptureModel for &&&Wrap<'_, T> {
    fn __weave_capture(&self) -> Value {
        self.0.__weave_capture_ref()
    }
}

/// Serialisable values are recorded as their JSON.
#[doc(hidden)]
pub trait CaptureSerialize {
    fn __weave_capture(&self) -> Value;
}
impl<T: Serialize + ?Sized> CaptureSerialize for &&Wrap<'_, T> {
    fn __weave_capture(&self) -> Value {
        match serde_json::to_value(self.0) {
            Ok(v) => v,
            Err(e) => Value::String(format!(
                "<{} could not be serialised: {e}>",
                std::any::type_name::<T>()
            )),
        }
    }
}

/// `Debug` values are recorded as their debug text.
#[doc(hidden)]
pub trait CaptureDebug {
    fn __weave_capture(&self) -> Value;
}
impl<T: Debug + ?Sized> CaptureDebug for &Wrap<'_, T> {
    fn __weave_capture(&self) -> Value {
        // Secret fields are found by name in the text (JSON values are redacted later).
        Value::String(crate::context::redact_debug_text(format!("{:?}", self.0)))
    }
}

/// Anything else is recorded as its type name.
#[doc(hidden)]
pub trait CaptureAny {
    fn __weave_capture(&self) -> Value;
}
impl<T: ?Sized> CaptureAny for Wrap<'_, T> {
    fn __weave_capture(&self) -> Value {
        Value::String(format!("<{}>", std::any::type_name::<T>()))
    }
}

/// A value's fingerprint: bytes that change whenever its captured JSON would. The same
/// ladder as the capture (ref > Serialize > Debug > type name), writing bytes instead of
/// building JSON; `#[derive(Model)]` uses it for a model's fields.
#[doc(hidden)]
pub trait FingerprintModel {
    fn __weave_fingerprint(&self, out: &mut Vec<u8>);
}
impl<T: CaptureRef + ?Sized> FingerprintModel for &&&Wrap<'_, T> {
    fn __weave_fingerprint(&self, out: &mut Vec<u8>) {
        if let Value::String(r) = self.0.__weave_capture_ref() {
            out.extend_from_slice(r.as_bytes());
        }
        out.push(0);
    }
}

#[doc(hidden)]
pub trait FingerprintSerialize {
    fn __weave_fingerprint(&self, out: &mut Vec<u8>);
}
impl<T: Serialize + ?Sized> FingerprintSerialize for &&Wrap<'_, T> {
    fn __weave_fingerprint(&self, out: &mut Vec<u8>) {
        if serde_json::to_writer(&mut *out, self.0).is_err() {
            out.extend_from_slice(std::any::type_name::<T>().as_bytes());
        }
        out.push(0);
    }
}

#[doc(hidden)]
pub trait FingerprintDebug {
    fn __weave_fingerprint(&self, out: &mut Vec<u8>);
}
impl<T: Debug + ?Sized> FingerprintDebug for &Wrap<'_, T> {
    fn __weave_fingerprint(&self, out: &mut Vec<u8>) {
        use std::io::Write as _;
        let _ = write!(out, "{:?}", self.0);
        out.push(0);
    }
}

#[doc(hidden)]
pub trait FingerprintAny {
    fn __weave_fingerprint(&self, out: &mut Vec<u8>);
}
impl<T: ?Sized> FingerprintAny for Wrap<'_, T> {
    fn __weave_fingerprint(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(std::any::type_name::<T>().as_bytes());
        out.push(0);
    }
}

/// Errors implementing `std::error::Error`: message plus the chain of sources.
#[doc(hidden)]
pub trait ErrError {
    fn __weave_error(&self) -> Exception;
}
impl<T: std::error::Error + ?Sized> ErrError for &&&Wrap<'_, T> {
    fn __weave_error(&self) -> Exception {
        let mut traceback = String::new();
        let mut source = self.0.source();
        while let Some(s) = source {
            traceback.push_str("caused by: ");
            traceback.push_str(&s.to_string());
            traceback.push('\n');
            source = s.source();
        }
        Exception {
            kind: std::any::type_name::<T>().to_string(),
            message: self.0.to_string(),
            traceback,
        }
    }
}

/// `Display` errors (e.g. `anyhow::Error`): the alternate form carries the context chain.
#[doc(hidden)]
pub trait ErrDisplay {
    fn __weave_error(&self) -> Exception;
}
impl<T: Display + ?Sized> ErrDisplay for &&Wrap<'_, T> {
    fn __weave_error(&self) -> Exception {
        Exception {
            kind: std::any::type_name::<T>().to_string(),
            message: format!("{:#}", self.0),
            traceback: String::new(),
        }
    }
}

/// `Debug` errors.
#[doc(hidden)]
pub trait ErrDebug {
    fn __weave_error(&self) -> Exception;
}
impl<T: Debug + ?Sized> ErrDebug for &Wrap<'_, T> {
    fn __weave_error(&self) -> Exception {
        Exception {
            kind: std::any::type_name::<T>().to_string(),
            message: format!("{:?}", self.0),
            traceback: String::new(),
        }
    }
}

/// Errors with nothing to show but their type.
#[doc(hidden)]
pub trait ErrAny {
    fn __weave_error(&self) -> Exception;
}
impl<T: ?Sized> ErrAny for Wrap<'_, T> {
    fn __weave_error(&self) -> Exception {
        Exception {
            kind: std::any::type_name::<T>().to_string(),
            message: String::new(),
            traceback: String::new(),
        }
    }
}
