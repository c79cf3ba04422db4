//! serde for [`MfaState`] (which has no serde derive in `model`): as its `as_str()` string,
//! read back with [`MfaState::from_graph`].

use serde::{Deserialize, Deserializer, Serializer};

use crate::model::MfaState;

pub(super) fn serialize<S: Serializer>(state: &MfaState, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(state.as_str())
}

pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<MfaState, D::Error> {
    Ok(MfaState::from_graph(&String::deserialize(d)?))
}

pub(super) mod option {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(
        state: &Option<MfaState>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match state {
            Some(st) => s.serialize_some(st.as_str()),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<MfaState>, D::Error> {
        Ok(Option::<String>::deserialize(d)?.map(|s| MfaState::from_graph(&s)))
    }
}
