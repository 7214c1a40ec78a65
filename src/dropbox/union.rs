//! Dropbox's tagged unions (Stone's, as the API spec writes them) on the way in: [`Union`]
//! reads one as it arrives, and `stone_union!` declares a Rust enum together with its decoder,
//! so that a member's wire tag, its Rust variant, its text and how its value is carried sit
//! together instead of in a hand-written `match` kept in step with the enum.
//!
//! A member's value is carried in one of Stone's shapes: nested under a key named after the tag
//! (`as nested`; `as nested_opt` when it may be absent or `null`), or, for a struct member, its
//! fields beside `.tag` (`as flattened`). A member that needs more (a value dropped rather than
//! failing the whole union) names a function of the `&Union` (`as with function`). A union
//! with a `_ => Other` member last is open: a tag Dropbox adds later decodes to it instead of
//! failing the reply. Without one it is closed, and an unknown tag is a decode error naming the
//! tags expected. Unions whose members are all void or structs, and that need none of this,
//! use serde's `#[serde(tag = ".tag")]` instead.

use serde::de::{self, DeserializeOwned};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

/// Declares an enum for a Dropbox union and its `Deserialize` implementation from one list of
/// members:
///
/// ```text
/// stone_union! {
///     /// Why a path could not be looked up.
///     #[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
///     pub enum LookupError {
///         #[error("Dropbox refuses this path as malformed{}", detail(.0))]
///         "malformed_path" => MalformedPath(Option<String>) as nested_opt,
///         #[error("nothing exists at this path in Dropbox")]
///         "not_found" => NotFound,
///         #[error("Dropbox cannot look up this path")]
///         _ => Other,
///     }
/// }
/// ```
///
/// Every member ends with a comma. The catch-all, if any, comes last; it may keep the object's
/// fields (`_ => Other(Info) as flattened`).
macro_rules! stone_union {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident { $($members:tt)* }
    ) => {
        $crate::dropbox::union::stone_union! {
            @munch [$(#[$meta])*] [$vis] $name [] $($members)*
        }
    };
    // One member at a time, collected into `[{ [attributes] tag Variant [(Type) shape] } ...]`.
    (
        @munch $head:tt $vis:tt $name:ident [$($known:tt)*]
        $(#[$m:meta])* $tag:literal => $variant:ident($ty:ty) as $how:ident $($f:path)?,
        $($rest:tt)*
    ) => {
        $crate::dropbox::union::stone_union! {
            @munch $head $vis $name
            [$($known)* { [$(#[$m])*] $tag $variant [($ty) $how $($f)?] }]
            $($rest)*
        }
    };
    (
        @munch $head:tt $vis:tt $name:ident [$($known:tt)*]
        $(#[$m:meta])* $tag:literal => $variant:ident,
        $($rest:tt)*
    ) => {
        $crate::dropbox::union::stone_union! {
            @munch $head $vis $name
            [$($known)* { [$(#[$m])*] $tag $variant [] }]
            $($rest)*
        }
    };
    // The catch-all: an open union.
    (
        @munch $head:tt $vis:tt $name:ident $known:tt
        $(#[$m:meta])* _ => $other:ident $(($ty:ty) as $how:ident)?,
    ) => {
        $crate::dropbox::union::stone_union! {
            @emit $head $vis $name $known ([$(#[$m])*] $other [$(($ty) $how)?])
        }
    };
    // No catch-all: a closed union.
    (@munch $head:tt $vis:tt $name:ident $known:tt) => {
        $crate::dropbox::union::stone_union! { @emit $head $vis $name $known () }
    };
    (
        @emit [$(#[$meta:meta])*] [$vis:vis] $name:ident
        [$({ [$(#[$m:meta])*] $tag:literal $variant:ident [$(($ty:ty) $how:ident $($f:path)?)?] })*]
        ($([$(#[$om:meta])*] $other:ident [$(($oty:ty) $ohow:ident)?])?)
    ) => {
        $(#[$meta])*
        $vis enum $name {
            $($(#[$m])* $variant $(($ty))?,)*
            $($(#[$om])* $other $(($oty))?,)?
        }

        impl<'de> ::serde::Deserialize<'de> for $name {
            fn deserialize<D: ::serde::Deserializer<'de>>(
                deserializer: D,
            ) -> ::std::result::Result<Self, D::Error> {
                let u = <$crate::dropbox::union::Union as ::serde::Deserialize>::deserialize(
                    deserializer,
                )?;
                Ok(match u.tag() {
                    $($tag => $name::$variant
                        $(($crate::dropbox::union::stone_union!(@take u $how $($f)?)))?,)*
                    $(_ => $name::$other
                        $(($crate::dropbox::union::stone_union!(@take u $ohow)))?,)?
                    // Reached only by a closed union (an open one's `_` is above).
                    #[allow(unreachable_patterns)]
                    other => {
                        return Err(::serde::de::Error::unknown_variant(other, &[$($tag),*]));
                    }
                })
            }
        }
    };
    (@take $u:ident nested) => { $u.nested()? };
    (@take $u:ident nested_opt) => { $u.nested_opt()? };
    (@take $u:ident flattened) => { $u.flattened()? };
    (@take $u:ident with $f:path) => { $f(&$u)? };
}

pub(crate) use stone_union;

/// A Stone union as it arrives, before it is matched to a Rust enum: the tag, and the other
/// fields of its object. Member values are taken from it by shape: [`Union::nested`] for a
/// value under the key named after the tag, [`Union::flattened`] for a struct member whose
/// fields sit beside `.tag`. A bare string is accepted as a void member, as Dropbox does.
pub(crate) struct Union {
    tag: String,
    fields: Map<String, Value>,
}

impl Union {
    pub(crate) fn tag(&self) -> &str {
        &self.tag
    }

    /// The member's value, nested under the tag's name.
    pub(crate) fn nested<T: DeserializeOwned, E: de::Error>(&self) -> Result<T, E> {
        match self.fields.get(&self.tag) {
            Some(value) => T::deserialize(value).map_err(E::custom),
            None => Err(E::custom(format_args!("missing field `{}`", self.tag))),
        }
    }

    /// A nullable nested member value: absent and `null` are both `None`.
    pub(crate) fn nested_opt<T: DeserializeOwned, E: de::Error>(&self) -> Result<Option<T>, E> {
        match self.fields.get(&self.tag) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => T::deserialize(value).map(Some).map_err(E::custom),
        }
    }

    /// A struct member whose fields are flattened beside `.tag`.
    pub(crate) fn flattened<T: DeserializeOwned, E: de::Error>(&self) -> Result<T, E> {
        T::deserialize(&Value::Object(self.fields.clone())).map_err(E::custom)
    }
}

impl<'de> Deserialize<'de> for Union {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::String(tag) => Ok(Union {
                tag,
                fields: Map::new(),
            }),
            Value::Object(mut fields) => match fields.remove(".tag") {
                Some(Value::String(tag)) => Ok(Union { tag, fields }),
                _ => Err(de::Error::custom("missing field `.tag`")),
            },
            _ => Err(de::Error::custom(
                "expected a tagged union (an object with `.tag`)",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    //! The macro's edge cases, each as a body and what it decodes to (or the start of the
    //! decode error), on small unions that use every shape.

    use super::*;

    #[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
    struct Point {
        x: u64,
        y: u64,
    }

    stone_union! {
        #[derive(Debug, Clone, PartialEq, Eq)]
        enum Inner {
            "x" => X,
            _ => Other,
        }
    }

    /// A value that is dropped, not fatal, when it does not decode.
    fn lenient<E: de::Error>(u: &Union) -> Result<Option<u64>, E> {
        Ok(u.nested::<u64, E>().ok())
    }

    stone_union! {
        #[derive(Debug, Clone, PartialEq, Eq)]
        enum Sample {
            "void" => Void,
            "nested" => Nested(u64) as nested,
            "maybe" => Maybe(Option<String>) as nested_opt,
            "flat" => Flat(Point) as flattened,
            "inner" => Inner(Inner) as nested,
            "lenient" => Lenient(Option<u64>) as with lenient,
            _ => Other,
        }
    }

    stone_union! {
        #[derive(Debug, Clone, PartialEq, Eq)]
        enum Closed {
            "a" => A,
            "b" => B(String) as nested,
        }
    }

    stone_union! {
        #[derive(Debug, Clone, PartialEq, Eq)]
        enum Keeping {
            "known" => Known,
            _ => Rest(Point) as flattened,
        }
    }

    fn decode<T: DeserializeOwned>(body: &str) -> Result<T, String> {
        serde_json::from_str(body).map_err(|e| e.to_string())
    }

    fn check<T: DeserializeOwned + std::fmt::Debug + PartialEq>(cases: &[(&str, Result<T, &str>)]) {
        for (body, expected) in cases {
            match (decode::<T>(body), expected) {
                (Ok(got), Ok(want)) => assert_eq!(&got, want, "{body}"),
                (Err(got), Err(want)) => assert!(got.starts_with(want), "{body}: {got}"),
                (got, want) => panic!("{body}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn members_by_shape() {
        use Sample as S;
        check::<Sample>(&[
            // Void: a bare string, or `.tag` alone or with fields Dropbox added.
            (r#""void""#, Ok(S::Void)),
            (r#"{".tag": "void"}"#, Ok(S::Void)),
            (r#"{".tag": "void", "extra": [1]}"#, Ok(S::Void)),
            // Nested under the tag's name.
            (r#"{".tag": "nested", "nested": 7}"#, Ok(S::Nested(7))),
            // Nullable: absent, null or present.
            (r#"{".tag": "maybe"}"#, Ok(S::Maybe(None))),
            (r#"{".tag": "maybe", "maybe": null}"#, Ok(S::Maybe(None))),
            (
                r#"{".tag": "maybe", "maybe": "why"}"#,
                Ok(S::Maybe(Some("why".into()))),
            ),
            // A struct member's fields beside `.tag`.
            (
                r#"{".tag": "flat", "x": 1, "y": 2}"#,
                Ok(S::Flat(Point { x: 1, y: 2 })),
            ),
            // A function decides.
            (
                r#"{".tag": "lenient", "lenient": 5}"#,
                Ok(S::Lenient(Some(5))),
            ),
            (
                r#"{".tag": "lenient", "lenient": "x"}"#,
                Ok(S::Lenient(None)),
            ),
        ]);
    }

    #[test]
    fn unknown_tags() {
        check::<Sample>(&[
            // An open union takes a tag added later, with or without a value.
            (
                r#"{".tag": "brand_new", "brand_new": 3}"#,
                Ok(Sample::Other),
            ),
            (r#""brand_new""#, Ok(Sample::Other)),
        ]);
        // A closed one refuses it and says what it expected.
        check::<Closed>(&[
            (r#"{".tag": "a"}"#, Ok(Closed::A)),
            (r#"{".tag": "b", "b": "v"}"#, Ok(Closed::B("v".into()))),
            (
                r#"{".tag": "c"}"#,
                Err("unknown variant `c`, expected `a` or `b`"),
            ),
        ]);
        // A catch-all may keep the object's fields.
        check::<Keeping>(&[
            (r#"{".tag": "known"}"#, Ok(Keeping::Known)),
            (
                r#"{".tag": "later", "x": 3, "y": 4}"#,
                Ok(Keeping::Rest(Point { x: 3, y: 4 })),
            ),
            (r#"{".tag": "later", "x": 3}"#, Err("missing field `y`")),
        ]);
    }

    #[test]
    fn missing_and_malformed_fields() {
        check::<Sample>(&[
            (r#"{".tag": "nested"}"#, Err("missing field `nested`")),
            (
                r#"{".tag": "nested", "nested": null}"#,
                Err("invalid type: null"),
            ),
            (r#"{".tag": "flat", "x": 1}"#, Err("missing field `y`")),
            (r#"{"nested": 7}"#, Err("missing field `.tag`")),
            (r#"{".tag": 7}"#, Err("missing field `.tag`")),
            ("7", Err("expected a tagged union")),
            ("[]", Err("expected a tagged union")),
            ("null", Err("expected a tagged union")),
        ]);
    }

    #[test]
    fn nested_unions() {
        use Sample as S;
        check::<Sample>(&[
            (
                r#"{".tag": "inner", "inner": {".tag": "x"}}"#,
                Ok(S::Inner(Inner::X)),
            ),
            (r#"{".tag": "inner", "inner": "x"}"#, Ok(S::Inner(Inner::X))),
            // The inner union is open too.
            (
                r#"{".tag": "inner", "inner": {".tag": "y", "y": 1}}"#,
                Ok(S::Inner(Inner::Other)),
            ),
            // But a tagless inner value fails the whole union.
            (
                r#"{".tag": "inner", "inner": {}}"#,
                Err("missing field `.tag`"),
            ),
            (r#"{".tag": "inner"}"#, Err("missing field `inner`")),
        ]);
    }
}
