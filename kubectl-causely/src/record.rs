//! The install record: a ConfigMap in the install's namespace holding the settings an install was
//! made with and the exact objects it applied. `upgrade` keeps the settings, prunes what the new
//! release no longer has and rolls back to the recorded objects; `uninstall` deletes them.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;

use crate::baseline::Component;
use crate::render::settings::Settings;
use crate::render::{Manifest, meta};

/// Name of the record ConfigMap.
pub const NAME: &str = "causely-install";
const SETTINGS_KEY: &str = "settings.json";
const OBJECTS_KEY: &str = "objects.json";

/// Why a record in the cluster cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("install record {0} has no {1}")]
    Missing(String, &'static str),
    #[error("install record {0} is corrupt ({1}): {2}")]
    Corrupt(String, &'static str, String),
}

/// What an install applied, and with which settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub settings: Settings,
    pub objects: Vec<Manifest>,
}

impl Record {
    /// The record as a manifest, to be applied last (after everything it lists).
    pub fn to_manifest(&self) -> Manifest {
        let objects: Vec<&serde_json::Value> = self.objects.iter().map(|m| &m.object).collect();
        let mut metadata = meta::namespaced(&self.settings, Component::Mediator, NAME);
        if let Some(labels) = metadata.labels.as_mut() {
            labels.remove("app.kubernetes.io/name");
        }
        // Serializing plain data into JSON cannot fail; an empty string would be caught on read.
        let data = BTreeMap::from([
            (SETTINGS_KEY.to_owned(), serde_json::to_string_pretty(&self.settings).unwrap_or_default()),
            (OBJECTS_KEY.to_owned(), serde_json::to_string(&objects).unwrap_or_default()),
        ]);
        Manifest::of(&ConfigMap { metadata, data: Some(data), ..ConfigMap::default() })
    }

    /// Reads a record back from its ConfigMap.
    pub fn from_config_map(map: &ConfigMap) -> Result<Record, RecordError> {
        let name = format!(
            "{}/{}",
            map.metadata.namespace.as_deref().unwrap_or_default(),
            map.metadata.name.as_deref().unwrap_or_default()
        );
        let data = map.data.as_ref();
        let field =
            |key: &'static str| data.and_then(|d| d.get(key)).ok_or_else(|| RecordError::Missing(name.clone(), key));
        let settings: Settings = serde_json::from_str(field(SETTINGS_KEY)?)
            .map_err(|e| RecordError::Corrupt(name.clone(), SETTINGS_KEY, e.to_string()))?;
        let values: Vec<serde_json::Value> = serde_json::from_str(field(OBJECTS_KEY)?)
            .map_err(|e| RecordError::Corrupt(name.clone(), OBJECTS_KEY, e.to_string()))?;
        let objects = values
            .into_iter()
            .map(|v| Manifest::from_value(v).map_err(|e| RecordError::Corrupt(name.clone(), OBJECTS_KEY, e)))
            .collect::<Result<_, _>>()?;
        Ok(Record { settings, objects })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::baseline::Baseline;
    use crate::render::render;

    fn record() -> Record {
        let settings = Settings::defaults();
        let objects = render(&settings, &Baseline::seed().unwrap()).unwrap();
        Record { settings, objects }
    }

    fn as_config_map(manifest: &Manifest) -> ConfigMap {
        serde_json::from_value(manifest.object.clone()).unwrap()
    }

    #[test]
    fn a_record_round_trips_through_its_config_map() {
        let original = record();
        let manifest = original.to_manifest();
        assert_eq!(manifest.key(), "ConfigMap/causely/causely-install");
        assert_eq!(Record::from_config_map(&as_config_map(&manifest)).unwrap(), original);
    }

    #[test]
    fn a_record_with_missing_or_corrupt_data_is_refused_with_the_key() {
        let mut map = as_config_map(&record().to_manifest());
        map.data.as_mut().unwrap().insert(SETTINGS_KEY.into(), "{\"namespace\": 3}".into());
        let err = Record::from_config_map(&map).unwrap_err().to_string();
        assert!(err.contains("corrupt (settings.json)"), "{err}");
        map.data.as_mut().unwrap().remove(OBJECTS_KEY);
        map.data.as_mut().unwrap().insert(SETTINGS_KEY.into(), serde_json::to_string(&Settings::defaults()).unwrap());
        let err = Record::from_config_map(&map).unwrap_err().to_string();
        assert!(err.contains("has no objects.json"), "{err}");
    }
}
