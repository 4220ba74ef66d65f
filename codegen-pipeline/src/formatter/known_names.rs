//! Names that an LLM commonly uses without importing them, and the module that
//! provides each one.

/// Names exported by `typing` (Python 3.11) that get a `from typing import ...`
/// line when Ruff reports them as undefined (F821).
///
/// `Counter`, `OrderedDict` and `ChainMap` also exist in `typing`, but code
/// that forgets to import them nearly always means the `collections` classes
/// (it calls them), so they are listed in [`COLLECTIONS_NAMES`] instead.
pub const TYPING_NAMES: &[&str] = &[
    "AbstractSet",
    "Annotated",
    "Any",
    "AnyStr",
    "AsyncContextManager",
    "AsyncGenerator",
    "AsyncIterable",
    "AsyncIterator",
    "Awaitable",
    "BinaryIO",
    "ByteString",
    "Callable",
    "ClassVar",
    "Collection",
    "Concatenate",
    "Container",
    "ContextManager",
    "Coroutine",
    "DefaultDict",
    "Deque",
    "Dict",
    "Final",
    "ForwardRef",
    "FrozenSet",
    "Generator",
    "Generic",
    "Hashable",
    "IO",
    "ItemsView",
    "Iterable",
    "Iterator",
    "KeysView",
    "List",
    "Literal",
    "LiteralString",
    "Mapping",
    "MappingView",
    "Match",
    "MutableMapping",
    "MutableSequence",
    "MutableSet",
    "NamedTuple",
    "Never",
    "NewType",
    "NoReturn",
    "NotRequired",
    "Optional",
    "ParamSpec",
    "Pattern",
    "Protocol",
    "Required",
    "Reversible",
    "Self",
    "Sequence",
    "Set",
    "Sized",
    "SupportsAbs",
    "SupportsFloat",
    "SupportsIndex",
    "SupportsInt",
    "SupportsRound",
    "TYPE_CHECKING",
    "Text",
    "TextIO",
    "Tuple",
    "Type",
    "TypeAlias",
    "TypeGuard",
    "TypeVar",
    "TypeVarTuple",
    "TypedDict",
    "Union",
    "Unpack",
    "ValuesView",
    "cast",
    "final",
    "get_args",
    "get_origin",
    "get_type_hints",
    "no_type_check",
    "overload",
    "runtime_checkable",
];

/// Names from `collections` that get a `from collections import ...` line when
/// Ruff reports them as undefined (F821).
pub const COLLECTIONS_NAMES: &[&str] = &[
    "ChainMap",
    "Counter",
    "OrderedDict",
    "defaultdict",
    "deque",
    "namedtuple",
];

/// The module providing `name`, if it is one of the known names.
pub fn module_for(name: &str) -> Option<&'static str> {
    if TYPING_NAMES.contains(&name) {
        Some("typing")
    } else if COLLECTIONS_NAMES.contains(&name) {
        Some("collections")
    } else {
        None
    }
}
