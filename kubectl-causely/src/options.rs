//! Turns the settings flags (`--agent-mode`, `--set`, `-f values.yaml`, ...) into validated
//! settings on top of a base: this release's defaults for `install`, the recorded settings for
//! `upgrade`.

use crate::baseline::Component;
use crate::cli::SettingsFlags;
use crate::exit::Failure;
use crate::render::settings::{ExecutorRbac, Settings, parse_victoria_metrics};
use crate::render::values::Values;

/// Applies one `--set KEY=VALUE`.
fn set(settings: &mut Settings, assignment: &str) -> Result<(), Failure> {
    let (key, value) =
        assignment.split_once('=').ok_or_else(|| Failure::Usage(format!("--set {assignment:?} is not KEY=VALUE")))?;
    if value.is_empty() {
        return Err(Failure::Usage(format!("--set {key} has an empty value")));
    }
    if key == "upstream" {
        settings.values.upstream = Some(value.to_owned());
        return Ok(());
    }
    let component = key
        .strip_prefix("image.")
        .and_then(|name| Component::ALL.into_iter().find(|c| c.name() == name))
        .ok_or_else(|| {
        Failure::Usage(format!(
            "--set {key}: unknown key; known keys are upstream and image.<agent|mediator|executor|victoria-metrics>"
        ))
    })?;
    settings.images.insert(component, value.to_owned());
    Ok(())
}

/// `base` with every flag that was given applied on top, validated.
pub fn resolve(mut settings: Settings, namespace: &str, flags: &SettingsFlags) -> Result<Settings, Failure> {
    let usage = |e: crate::render::settings::SettingsError| Failure::Usage(e.to_string());
    settings.namespace = namespace.to_owned();
    settings.version = env!("CARGO_PKG_VERSION").to_owned();
    if let Some(path) = &flags.values {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Failure::Usage(format!("cannot read values file {}: {e}", path.display())))?;
        settings.values =
            Values::parse(&text).map_err(|e| Failure::Usage(format!("values file {}: {e}", path.display())))?;
    }
    if let Some(mode) = flags.agent_mode {
        settings.agent_mode = mode;
    }
    match (flags.executor, flags.executor_rbac) {
        (Some(false), Some(_)) => {
            return Err(Failure::Usage("--executor-rbac needs the executor".into()));
        }
        (Some(false), None) => settings.executor = None,
        (Some(true), rbac) => settings.executor = Some(rbac.or(settings.executor).unwrap_or(ExecutorRbac::Scoped)),
        (None, Some(rbac)) if settings.executor.is_some() => settings.executor = Some(rbac),
        (None, Some(_)) => return Err(Failure::Usage("--executor-rbac needs --executor".into())),
        (None, None) => {}
    }
    if let Some(storage) = flags.mediator_storage {
        settings.mediator_storage = storage;
    }
    if let Some(vm) = &flags.victoria_metrics {
        settings.victoria_metrics = parse_victoria_metrics(vm).map_err(usage)?;
    }
    if let Some(registry) = &flags.registry {
        settings.registry = registry.clone();
    }
    for assignment in &flags.set {
        set(&mut settings, assignment)?;
    }
    settings.validate().map_err(usage)?;
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::settings::AgentMode;

    fn flags() -> SettingsFlags {
        SettingsFlags::default()
    }

    #[test]
    fn no_flags_keep_the_base() {
        let base = Settings { agent_mode: AgentMode::Privileged, ..Settings::defaults() };
        let resolved = resolve(base.clone(), "causely", &flags()).unwrap();
        assert_eq!(resolved, base);
    }

    #[test]
    fn set_overrides_one_image_and_refuses_unknown_keys() {
        let f = SettingsFlags { set: vec!["image.agent=my/agent:dev".into()], ..flags() };
        let s = resolve(Settings::defaults(), "causely", &f).unwrap();
        assert_eq!(s.image(Component::Agent), "my/agent:dev");
        for bad in ["image.db=x", "replicas=3", "image.agent", "image.agent="] {
            let f = SettingsFlags { set: vec![bad.into()], ..flags() };
            assert!(matches!(resolve(Settings::defaults(), "causely", &f), Err(Failure::Usage(_))), "{bad}");
        }
    }

    #[test]
    fn the_executor_flags_combine_with_the_base() {
        let on = SettingsFlags { executor: Some(true), ..flags() };
        assert_eq!(resolve(Settings::defaults(), "c", &on).unwrap().executor, Some(ExecutorRbac::Scoped));
        let admin = SettingsFlags { executor_rbac: Some(ExecutorRbac::ClusterAdmin), ..on.clone() };
        let with_admin = resolve(Settings::defaults(), "c", &admin).unwrap();
        assert_eq!(with_admin.executor, Some(ExecutorRbac::ClusterAdmin));
        // Recorded cluster-admin survives an upgrade that only says --executor.
        assert_eq!(resolve(with_admin.clone(), "c", &on).unwrap().executor, Some(ExecutorRbac::ClusterAdmin));
        let off = SettingsFlags { executor: Some(false), ..flags() };
        assert_eq!(resolve(with_admin, "c", &off).unwrap().executor, None);
        let rbac_only = SettingsFlags { executor_rbac: Some(ExecutorRbac::Scoped), ..flags() };
        assert!(matches!(resolve(Settings::defaults(), "c", &rbac_only), Err(Failure::Usage(_))));
    }

    #[test]
    fn an_unreadable_or_invalid_values_file_is_a_usage_error_naming_it() {
        let f = SettingsFlags { values: Some("/nonexistent/values.yaml".into()), ..flags() };
        let Err(Failure::Usage(msg)) = resolve(Settings::defaults(), "c", &f) else { panic!("accepted") };
        assert!(msg.contains("/nonexistent/values.yaml"), "{msg}");
    }

    #[test]
    fn the_upstream_must_be_https() {
        let f = SettingsFlags { set: vec!["upstream=http://plain.example.com".into()], ..flags() };
        assert!(matches!(resolve(Settings::defaults(), "c", &f), Err(Failure::Usage(_))));
        let f = SettingsFlags { set: vec!["upstream=https://backend.example.com".into()], ..flags() };
        assert!(resolve(Settings::defaults(), "c", &f).is_ok());
    }
}
