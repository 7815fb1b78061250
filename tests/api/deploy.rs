//! The deployment files: the Render blueprint runs in several regions with several
//! instances each, every web service gets the same keys from one environment group
//! that holds no secret value, and the toolchain is pinned.

use serde_norway::Value;

fn read(file: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(file))
        .unwrap_or_else(|error| panic!("{file}: {error}"))
}

fn str_of<'a>(value: &'a Value, key: &str) -> Option<&'a str> {
    value.get(key).and_then(Value::as_str)
}

#[test]
fn the_render_blueprint_spans_regions_and_shares_keys_through_one_group() {
    let blueprint: Value = serde_norway::from_str(&read("render.yaml")).expect("valid YAML");
    let services = blueprint["services"].as_sequence().expect("services");
    let web: Vec<&Value> = services
        .iter()
        .filter(|service| str_of(service, "type") == Some("web"))
        .collect();
    let mut regions: Vec<&str> = web.iter().filter_map(|s| str_of(s, "region")).collect();
    regions.sort_unstable();
    regions.dedup();
    assert!(regions.len() >= 2, "web services in {regions:?}");

    let groups = blueprint["envVarGroups"]
        .as_sequence()
        .expect("envVarGroups");
    let keyed: Vec<&str> = groups
        .iter()
        .filter(|group| {
            group["envVars"].as_sequence().is_some_and(|vars| {
                vars.iter().any(|var| {
                    str_of(var, "key") == Some("QUERYGATE_KEYS")
                        && var.get("value").is_none()
                        && var.get("generateValue").is_none()
                })
            })
        })
        .filter_map(|group| str_of(group, "name"))
        .collect();
    assert_eq!(
        keyed.len(),
        1,
        "one group declares QUERYGATE_KEYS without a value"
    );

    for service in &web {
        let name = str_of(service, "name").unwrap_or("?");
        let instances = service["numInstances"].as_u64().unwrap_or(1);
        assert!(instances >= 2, "{name}: {instances} instance(s)");
        assert_eq!(
            str_of(service, "healthCheckPath"),
            Some("/api/health"),
            "{name}"
        );
        let vars = service["envVars"].as_sequence().expect("envVars");
        assert!(
            vars.iter()
                .any(|var| str_of(var, "fromGroup") == Some(keyed[0])),
            "{name} does not attach {}",
            keyed[0]
        );
        assert!(
            !vars
                .iter()
                .any(|var| str_of(var, "key") == Some("QUERYGATE_KEYS")),
            "{name} sets its own QUERYGATE_KEYS"
        );
    }
}

#[test]
fn every_region_of_the_blueprint_shares_one_store() {
    let blueprint: Value = serde_norway::from_str(&read("render.yaml")).expect("valid YAML");
    let services = blueprint["services"].as_sequence().expect("services");
    let stores: Vec<&Value> = services
        .iter()
        .filter(|service| str_of(service, "type") == Some("keyvalue"))
        .collect();
    assert_eq!(stores.len(), 1, "one store for every region");
    let store = stores[0];
    let store_name = str_of(store, "name").expect("store name");
    let store_region = str_of(store, "region").expect("store region");
    assert_eq!(str_of(store, "maxmemoryPolicy"), Some("noeviction"));
    for service in services
        .iter()
        .filter(|service| str_of(service, "type") == Some("web"))
    {
        let name = str_of(service, "name").unwrap_or("?");
        let vars = service["envVars"].as_sequence().expect("envVars");
        let redis = vars
            .iter()
            .find(|var| str_of(var, "key") == Some("REDIS_URL"))
            .unwrap_or_else(|| panic!("{name} has no REDIS_URL"));
        if str_of(service, "region") == Some(store_region) {
            // The private URL, from the store itself.
            assert_eq!(
                str_of(&redis["fromService"], "name"),
                Some(store_name),
                "{name}"
            );
            assert_eq!(
                str_of(&redis["fromService"], "property"),
                Some("connectionString"),
                "{name}"
            );
        } else {
            // The external URL, which no blueprint property gives: asked for.
            assert_eq!(redis["sync"].as_bool(), Some(false), "{name}");
        }
    }
    // The store lets the other regions in (external access needs TLS and the
    // password).
    let allowed = store["ipAllowList"].as_sequence().expect("ipAllowList");
    assert!(!allowed.is_empty(), "no other region could reach the store");
}

#[test]
fn the_toolchain_is_pinned_to_one_release() {
    let toolchain = read("rust-toolchain.toml");
    let channel = toolchain
        .lines()
        .find_map(|line| line.trim().strip_prefix("channel = "))
        .expect("a channel")
        .trim_matches('"');
    assert!(
        channel.split('.').count() == 3
            && channel.split('.').all(|part| part.parse::<u32>().is_ok()),
        "channel {channel} is not an exact release"
    );
}
