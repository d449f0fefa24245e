//! Which events a trail delivers: regions, global services, and classic or advanced event selectors.
//!
//! Pure functions over the stored CloudTrail record (a `serde_json::Value`), so the rules can be
//! tested as tables.
//! Supported: classic selectors (`ReadWriteType`, `IncludeManagementEvents`,
//! `ExcludeManagementEventSources`, S3 `DataResources` by bucket/prefix ARN or all of S3), and
//! advanced selectors over `eventCategory`, `eventSource`, `eventName`, `readOnly`,
//! `resources.type` and `resources.ARN` with every operator.
//! Events CloudTrail itself causes while delivering (its own PutObject calls) are never delivered,
//! so a quiet account has quiet windows.

use crate::error;
use citadel_wire::AwsError;
use serde_json::Value;

/// Services whose events are "global" (IAM and STS) for `IncludeGlobalServiceEvents`.
const GLOBAL_SOURCES: &[&str] = &["iam.amazonaws.com", "sts.amazonaws.com", "signin.amazonaws.com"];

/// Whether a trail in `home_region` delivers an event recorded in `event_region` from `source`.
pub fn region_matches(
    home_region: &str,
    multi_region: bool,
    include_global: bool,
    event_region: &str,
    source: &str,
) -> bool {
    if multi_region || event_region == home_region {
        return true;
    }
    include_global && GLOBAL_SOURCES.contains(&source)
}

fn str_field<'a>(record: &'a Value, name: &str) -> &'a str {
    record.get(name).and_then(Value::as_str).unwrap_or("")
}

fn is_management(record: &Value) -> bool {
    record.get("managementEvent").and_then(Value::as_bool).unwrap_or(true)
}

fn is_read_only(record: &Value) -> bool {
    record.get("readOnly").and_then(Value::as_bool).unwrap_or(false)
}

/// True for records of CloudTrail's own deliveries (service principal `cloudtrail.amazonaws.com`).
pub fn is_own_delivery(record: &Value) -> bool {
    let identity = record.get("userIdentity");
    let kind = identity.and_then(|i| i.get("type")).and_then(Value::as_str);
    let by = identity.and_then(|i| i.get("invokedBy")).and_then(Value::as_str);
    kind == Some("AWSService") && by == Some("cloudtrail.amazonaws.com")
}

fn resources(record: &Value) -> impl Iterator<Item = (&str, &str)> {
    record
        .get("resources")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|r| (str_field(r, "type"), str_field(r, "ARN")))
}

/// Whether the trail's selectors (classic `event_selectors` or `advanced`) select `record`.
/// With neither, every management event is selected (CloudTrail's default selector).
pub fn selects(event_selectors: Option<&Value>, advanced: Option<&Value>, record: &Value) -> bool {
    if is_own_delivery(record) {
        return false;
    }
    if let Some(advanced) = advanced.and_then(Value::as_array) {
        return advanced.iter().any(|selector| advanced_matches(selector, record));
    }
    match event_selectors.and_then(Value::as_array) {
        Some(list) => list.iter().any(|selector| classic_matches(selector, record)),
        None => is_management(record),
    }
}

/// Whether a trail's selectors could select any data event at all: a classic selector with
/// `DataResources`, or an advanced selector not limited to `eventCategory` = `Management`.
/// The default (no selectors) logs management events only. Services use it to skip recording data
/// events that no trail would deliver, so it errs towards `true`.
pub fn may_select_data_events(event_selectors: Option<&Value>, advanced: Option<&Value>) -> bool {
    if let Some(advanced) = advanced.and_then(Value::as_array) {
        return advanced.iter().any(|selector| {
            let fields = selector.get("FieldSelectors").and_then(Value::as_array);
            !fields.into_iter().flatten().any(|field| {
                field.get("Field").and_then(Value::as_str) == Some("eventCategory")
                    && field
                        .get("Equals")
                        .and_then(Value::as_array)
                        .is_some_and(|values| values.iter().all(|v| v.as_str() == Some("Management")))
            })
        });
    }
    event_selectors
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|selector| {
            selector
                .get("DataResources")
                .and_then(Value::as_array)
                .is_some_and(|resources| !resources.is_empty())
        })
}

fn classic_matches(selector: &Value, record: &Value) -> bool {
    let read_write = selector.get("ReadWriteType").and_then(Value::as_str).unwrap_or("All");
    let read_only = is_read_only(record);
    let rw_ok = match read_write {
        "ReadOnly" => read_only,
        "WriteOnly" => !read_only,
        _ => true,
    };
    if !rw_ok {
        return false;
    }
    if is_management(record) {
        let include = selector
            .get("IncludeManagementEvents")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        let source = str_field(record, "eventSource");
        let excluded = selector
            .get("ExcludeManagementEventSources")
            .and_then(Value::as_array)
            .is_some_and(|list| list.iter().any(|s| s.as_str() == Some(source)));
        return include && !excluded;
    }
    let data = selector.get("DataResources").and_then(Value::as_array);
    data.into_iter().flatten().any(|resource| {
        let kind = str_field(resource, "Type");
        let values = resource.get("Values").and_then(Value::as_array);
        resources(record).any(|(rtype, arn)| {
            rtype == kind
                && values.into_iter().flatten().filter_map(Value::as_str).any(|value| {
                    // `arn:aws:s3` (or `arn:aws:s3:::`) selects every bucket; otherwise a bucket ARN
                    // with an optional key prefix.
                    value == "arn:aws:s3" || value == "arn:aws:s3:::" || arn.starts_with(value)
                })
        })
    })
}

/// The values of one advanced-selector field in a record (several for `resources.*`).
fn field_values(record: &Value, field: &str) -> Vec<String> {
    match field {
        "eventCategory" => vec![if is_management(record) { "Management" } else { "Data" }.to_string()],
        "readOnly" => vec![is_read_only(record).to_string()],
        "resources.type" => resources(record).map(|(t, _)| t.to_string()).collect(),
        "resources.ARN" => resources(record).map(|(_, a)| a.to_string()).collect(),
        "userIdentity.arn" => vec![
            record
                .get("userIdentity")
                .and_then(|i| i.get("arn"))
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
        ],
        other => vec![str_field(record, other).to_string()],
    }
}

fn strings(selector: &Value, op: &str) -> Vec<String> {
    selector
        .get(op)
        .and_then(Value::as_array)
        .map(|list| list.iter().filter_map(Value::as_str).map(str::to_string).collect())
        .unwrap_or_default()
}

fn advanced_matches(selector: &Value, record: &Value) -> bool {
    let fields = selector.get("FieldSelectors").and_then(Value::as_array);
    fields.into_iter().flatten().all(|field| {
        let name = field.get("Field").and_then(Value::as_str).unwrap_or("");
        let values = field_values(record, name);
        let any = |op: &str, test: &dyn Fn(&str, &str) -> bool| {
            let wanted = strings(field, op);
            wanted.is_empty() || values.iter().any(|v| wanted.iter().any(|w| test(v, w)))
        };
        let none = |op: &str, test: &dyn Fn(&str, &str) -> bool| {
            let unwanted = strings(field, op);
            !values.iter().any(|v| unwanted.iter().any(|w| test(v, w)))
        };
        any("Equals", &|v, w| v == w)
            && any("StartsWith", &|v, w| v.starts_with(w))
            && any("EndsWith", &|v, w| v.ends_with(w))
            && none("NotEquals", &|v, w| v == w)
            && none("NotStartsWith", &|v, w| v.starts_with(w))
            && none("NotEndsWith", &|v, w| v.ends_with(w))
    })
}

/// Checks PutEventSelectors input the way CloudTrail does.
///
/// # Errors
/// `InvalidParameterCombinationException` when both or neither kinds are given,
/// `InvalidEventSelectorsException` for too many selectors, unknown data resource types or fields.
pub fn validate(event_selectors: Option<&Value>, advanced: Option<&Value>) -> Result<(), AwsError> {
    match (event_selectors, advanced) {
        (Some(_), Some(_)) => {
            return Err(error::invalid_combination(
                "You cannot specify both EventSelectors and AdvancedEventSelectors in the same request.",
            ));
        }
        (None, None) => {
            return Err(error::invalid_combination(
                "You must specify either EventSelectors or AdvancedEventSelectors.",
            ));
        }
        _ => {}
    }
    if let Some(list) = event_selectors.and_then(Value::as_array) {
        if list.len() > 5 {
            return Err(error::invalid_event_selectors(
                "You can have no more than 5 event selectors.",
            ));
        }
        for selector in list {
            let rw = selector.get("ReadWriteType").and_then(Value::as_str).unwrap_or("All");
            if !matches!(rw, "All" | "ReadOnly" | "WriteOnly") {
                return Err(error::invalid_event_selectors(format!("Invalid ReadWriteType: {rw}")));
            }
            for resource in selector
                .get("DataResources")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let kind = str_field(resource, "Type");
                if !matches!(
                    kind,
                    "AWS::S3::Object" | "AWS::Lambda::Function" | "AWS::DynamoDB::Table"
                ) {
                    return Err(error::invalid_event_selectors(format!(
                        "Value {kind} for parameter DataResources.Type is invalid."
                    )));
                }
                for value in resource.get("Values").and_then(Value::as_array).into_iter().flatten() {
                    let value = value.as_str().unwrap_or("");
                    if kind == "AWS::S3::Object" && !value.starts_with("arn:aws:s3") {
                        return Err(error::invalid_event_selectors(format!(
                            "Value {value} for parameter DataResources.Values is invalid."
                        )));
                    }
                }
            }
        }
    }
    if let Some(list) = advanced.and_then(Value::as_array) {
        if list.is_empty() || list.len() > 500 {
            return Err(error::invalid_event_selectors(
                "AdvancedEventSelectors must have 1 to 500 selectors.",
            ));
        }
        for selector in list {
            let fields = selector.get("FieldSelectors").and_then(Value::as_array);
            let fields = fields.map(Vec::as_slice).unwrap_or_default();
            if fields.is_empty() {
                return Err(error::invalid_event_selectors(
                    "Each advanced event selector needs FieldSelectors.",
                ));
            }
            let has_category = fields
                .iter()
                .any(|f| f.get("Field").and_then(Value::as_str) == Some("eventCategory"));
            if !has_category {
                return Err(error::invalid_event_selectors(
                    "The eventCategory field selector is required in every advanced event selector.",
                ));
            }
            for field in fields {
                let name = field.get("Field").and_then(Value::as_str).unwrap_or("");
                let known = [
                    "eventCategory",
                    "eventSource",
                    "eventName",
                    "eventType",
                    "readOnly",
                    "resources.type",
                    "resources.ARN",
                    "userIdentity.arn",
                    "errorCode",
                    "sessionCredentialFromConsole",
                    "vpcEndpointId",
                ];
                if !known.contains(&name) {
                    return Err(error::invalid_event_selectors(format!("Field {name} is not valid.")));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_selectors_may_select_data_events() {
        assert!(!may_select_data_events(None, None));
        let management_only = json!([{"ReadWriteType": "All", "IncludeManagementEvents": true, "DataResources": []}]);
        assert!(!may_select_data_events(Some(&management_only), None));
        let objects = json!([{"ReadWriteType": "All",
            "DataResources": [{"Type": "AWS::S3::Object", "Values": ["arn:aws:s3:::b/"]}]}]);
        assert!(may_select_data_events(Some(&objects), None));
        let advanced_management = json!([{"FieldSelectors": [{"Field": "eventCategory", "Equals": ["Management"]}]}]);
        assert!(!may_select_data_events(None, Some(&advanced_management)));
        let advanced_data = json!([
            {"FieldSelectors": [{"Field": "eventCategory", "Equals": ["Management"]}]},
            {"FieldSelectors": [{"Field": "eventCategory", "Equals": ["Data"]},
                                {"Field": "resources.type", "Equals": ["AWS::S3::Object"]}]}]);
        assert!(may_select_data_events(None, Some(&advanced_data)));
        // Any selector that does not pin the category could match a data event.
        let unpinned = json!([{"FieldSelectors": [{"Field": "readOnly", "Equals": ["true"]}]}]);
        assert!(may_select_data_events(None, Some(&unpinned)));
    }
    use serde_json::json;

    fn mgmt(source: &str, read_only: bool) -> Value {
        json!({"eventSource": source, "eventName": "X", "readOnly": read_only, "managementEvent": true})
    }

    fn s3_data(bucket: &str, key: &str, read_only: bool) -> Value {
        json!({
            "eventSource": "s3.amazonaws.com", "eventName": if read_only { "GetObject" } else { "PutObject" },
            "readOnly": read_only, "managementEvent": false,
            "resources": [
                {"type": "AWS::S3::Object", "ARN": format!("arn:aws:s3:::{bucket}/{key}")},
                {"type": "AWS::S3::Bucket", "ARN": format!("arn:aws:s3:::{bucket}")}
            ]
        })
    }

    #[test]
    #[allow(clippy::type_complexity)] // A table of cases reads best as tuples.
    fn selector_table() {
        let own = json!({"eventSource": "s3.amazonaws.com", "managementEvent": false, "readOnly": false,
            "userIdentity": {"type": "AWSService", "invokedBy": "cloudtrail.amazonaws.com"},
            "resources": [{"type": "AWS::S3::Object", "ARN": "arn:aws:s3:::logs/x"}]});
        let write_only = json!([{"ReadWriteType": "WriteOnly", "IncludeManagementEvents": true}]);
        let no_kms = json!([{"ReadWriteType": "All", "IncludeManagementEvents": true,
            "ExcludeManagementEventSources": ["kms.amazonaws.com"]}]);
        let s3_prefix = json!([{"ReadWriteType": "All", "IncludeManagementEvents": false,
            "DataResources": [{"Type": "AWS::S3::Object", "Values": ["arn:aws:s3:::data/in/"]}]}]);
        let all_s3 = json!([{"ReadWriteType": "ReadOnly", "IncludeManagementEvents": false,
            "DataResources": [{"Type": "AWS::S3::Object", "Values": ["arn:aws:s3"]}]}]);
        let adv_writes = json!([{"Name": "w", "FieldSelectors": [
            {"Field": "eventCategory", "Equals": ["Management"]},
            {"Field": "readOnly", "Equals": ["false"]},
            {"Field": "eventSource", "NotEquals": ["kms.amazonaws.com"]}]}]);
        let adv_s3 = json!([{"Name": "d", "FieldSelectors": [
            {"Field": "eventCategory", "Equals": ["Data"]},
            {"Field": "resources.type", "Equals": ["AWS::S3::Object"]},
            {"Field": "resources.ARN", "StartsWith": ["arn:aws:s3:::data/"]}]}]);
        let cases: Vec<(&str, Option<&Value>, Option<&Value>, Value, bool)> = vec![
            ("default mgmt read", None, None, mgmt("iam.amazonaws.com", true), true),
            ("default skips data", None, None, s3_data("data", "k", false), false),
            ("default skips own delivery", None, None, own.clone(), false),
            (
                "write-only skips reads",
                Some(&write_only),
                None,
                mgmt("iam.amazonaws.com", true),
                false,
            ),
            (
                "write-only keeps writes",
                Some(&write_only),
                None,
                mgmt("iam.amazonaws.com", false),
                true,
            ),
            (
                "exclude kms",
                Some(&no_kms),
                None,
                mgmt("kms.amazonaws.com", false),
                false,
            ),
            (
                "exclude kms keeps iam",
                Some(&no_kms),
                None,
                mgmt("iam.amazonaws.com", false),
                true,
            ),
            (
                "s3 prefix in",
                Some(&s3_prefix),
                None,
                s3_data("data", "in/x", false),
                true,
            ),
            (
                "s3 prefix out",
                Some(&s3_prefix),
                None,
                s3_data("data", "out/x", false),
                false,
            ),
            (
                "s3 prefix no mgmt",
                Some(&s3_prefix),
                None,
                mgmt("iam.amazonaws.com", false),
                false,
            ),
            ("all s3 reads", Some(&all_s3), None, s3_data("any", "k", true), true),
            (
                "all s3 not writes",
                Some(&all_s3),
                None,
                s3_data("any", "k", false),
                false,
            ),
            (
                "adv writes",
                None,
                Some(&adv_writes),
                mgmt("iam.amazonaws.com", false),
                true,
            ),
            (
                "adv writes skip kms",
                None,
                Some(&adv_writes),
                mgmt("kms.amazonaws.com", false),
                false,
            ),
            (
                "adv writes skip reads",
                None,
                Some(&adv_writes),
                mgmt("iam.amazonaws.com", true),
                false,
            ),
            ("adv s3", None, Some(&adv_s3), s3_data("data", "k", true), true),
            (
                "adv s3 other bucket",
                None,
                Some(&adv_s3),
                s3_data("other", "k", true),
                false,
            ),
            ("adv s3 never own", None, Some(&adv_s3), own, false),
        ];
        for (name, classic, advanced, record, want) in cases {
            assert_eq!(selects(classic, advanced, &record), want, "{name}");
        }
    }

    #[test]
    fn regions_and_global_events() {
        let cases = [
            ("us-east-1", false, true, "us-east-1", "kms.amazonaws.com", true),
            ("us-east-1", false, true, "eu-west-1", "kms.amazonaws.com", false),
            ("us-east-1", true, false, "eu-west-1", "kms.amazonaws.com", true),
            ("us-east-1", false, true, "eu-west-1", "iam.amazonaws.com", true),
            ("us-east-1", false, false, "eu-west-1", "iam.amazonaws.com", false),
        ];
        for (home, multi, global, region, source, want) in cases {
            assert_eq!(
                region_matches(home, multi, global, region, source),
                want,
                "{home} {region} {source}"
            );
        }
    }

    #[test]
    fn validation_rejects_bad_selectors() {
        let cases: Vec<(Option<Value>, Option<Value>, Option<&str>)> = vec![
            (Some(json!([{"ReadWriteType": "All"}])), None, None),
            (None, None, Some("InvalidParameterCombinationException")),
            (
                Some(json!([])),
                Some(json!([])),
                Some("InvalidParameterCombinationException"),
            ),
            (
                Some(json!([{"ReadWriteType": "Sometimes"}])),
                None,
                Some("InvalidEventSelectorsException"),
            ),
            (
                Some(json!([{"DataResources": [{"Type": "AWS::EC2::Instance", "Values": []}]}])),
                None,
                Some("InvalidEventSelectorsException"),
            ),
            (
                None,
                Some(json!([{"FieldSelectors": [{"Field": "readOnly", "Equals": ["true"]}]}])),
                Some("InvalidEventSelectorsException"),
            ),
            (
                None,
                Some(json!([{"FieldSelectors": [{"Field": "eventCategory", "Equals": ["Management"]}]}])),
                None,
            ),
        ];
        for (classic, advanced, want) in cases {
            let got = validate(classic.as_ref(), advanced.as_ref())
                .err()
                .map(|e| e.code.to_string());
            assert_eq!(got.as_deref(), want, "{classic:?} {advanced:?}");
        }
    }
}
