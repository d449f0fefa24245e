//! botocore service models, embedded and loaded on first use.
//!
//! The JSON files under `crates/wire/models/` are botocore's `service-2.json` with the documentation
//! stripped (see `scripts/gen_models.py`). They are compiled into the binary with `include_str!` and
//! parsed the first time a service is asked for, then kept for the life of the process in a
//! `OnceLock`, so a request never pays for parsing and an unused service costs nothing but bytes.
//!
//! The Rust types mirror only the parts of the model the codec reads. Structure members keep the
//! model's order because the XML and JSON encoders write members in that order, as AWS does.

use std::collections::HashMap;
use std::fmt;
use std::sync::OnceLock;

use regex::Regex;
use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};

use crate::Protocol;

/// The embedded models, keyed by SigV4 signing name.
const SOURCES: [(&str, &str); 6] = [
    ("iam", include_str!("../../models/iam.json")),
    ("sts", include_str!("../../models/sts.json")),
    ("kms", include_str!("../../models/kms.json")),
    ("cloudtrail", include_str!("../../models/cloudtrail.json")),
    ("logs", include_str!("../../models/logs.json")),
    ("monitoring", include_str!("../../models/monitoring.json")),
];

/// One parse result per entry of [`SOURCES`]; `None` inside means the embedded JSON did not parse,
/// which a unit test rules out.
static LOADED: [OnceLock<Option<ServiceModel>>; 6] = [
    OnceLock::new(),
    OnceLock::new(),
    OnceLock::new(),
    OnceLock::new(),
    OnceLock::new(),
    OnceLock::new(),
];

/// Returns the model of a service by its SigV4 signing name (`iam`, `sts`, `kms`, `cloudtrail`, `logs`,
/// `monitoring`), parsing it on first use.
pub fn model(service: &str) -> Option<&'static ServiceModel> {
    let index = SOURCES.iter().position(|(name, _)| *name == service)?;
    let (_, text) = SOURCES.get(index)?;
    LOADED
        .get(index)?
        .get_or_init(|| ServiceModel::from_json(text).ok())
        .as_ref()
}

/// The signing names of every embedded model.
pub fn service_names() -> impl Iterator<Item = &'static str> {
    SOURCES.iter().map(|(name, _)| *name)
}

/// A botocore service model.
#[derive(Debug, Deserialize)]
pub struct ServiceModel {
    /// Service-wide settings: protocol, API version, target prefix, XML namespace.
    pub metadata: Metadata,
    /// Operations by name.
    pub operations: HashMap<String, Operation>,
    /// Shapes by name.
    pub shapes: HashMap<String, Shape>,
    /// Error code (the `error.code`, else the shape name) to error shape name.
    #[serde(skip)]
    error_index: OnceLock<HashMap<String, String>>,
    /// rest-json routes, built on first use.
    #[serde(skip)]
    pub(crate) routes: OnceLock<Vec<super::rest_json::Route>>,
}

impl ServiceModel {
    /// Parses a model in the compact format written by `gen_models.py` (or botocore's own format).
    ///
    /// # Errors
    /// Returns the JSON error when the text is not a model.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The protocol botocore would choose for this service (`json` before `query`, as botocore's
    /// priority order says), or `None` when it is one Citadel does not speak.
    pub fn protocol(&self) -> Option<Protocol> {
        const PRIORITY: [&str; 4] = ["json", "rest-json", "rest-xml", "query"];
        PRIORITY
            .iter()
            .find(|name| self.metadata.protocols.iter().any(|p| p == *name))
            .and_then(|name| Protocol::from_model_name(name))
            .or_else(|| Protocol::from_model_name(&self.metadata.protocol))
    }

    /// True when the model lists `protocol` among those it supports.
    pub fn supports(&self, protocol: Protocol) -> bool {
        let names: &[&str] = match protocol {
            Protocol::Query => &["query", "ec2"],
            Protocol::Json => &["json"],
            Protocol::RestJson => &["rest-json"],
            Protocol::RestXml => &["rest-xml"],
        };
        names
            .iter()
            .any(|name| self.metadata.protocol == *name || self.metadata.protocols.iter().any(|p| p == *name))
    }

    /// The JSON protocol version, `1.0` or `1.1` (botocore's default is `1.0`).
    pub fn json_version(&self) -> &str {
        self.metadata.json_version.as_deref().unwrap_or("1.0")
    }

    /// True for services that moved from query to JSON and still report query error codes (CloudWatch).
    pub fn is_query_compatible(&self) -> bool {
        self.metadata.aws_query_compatible.is_some()
    }

    /// Looks up a shape by name.
    pub fn shape(&self, name: &str) -> Option<&Shape> {
        self.shapes.get(name)
    }

    /// Looks up an operation by name.
    pub fn operation(&self, name: &str) -> Option<&Operation> {
        self.operations.get(name)
    }

    /// Finds an error shape by the code a client sees (`error.code`, else the shape name), or by shape name.
    pub fn error_shape(&self, code: &str) -> Option<(&str, &Shape)> {
        let index = self.error_index.get_or_init(|| {
            let mut index = HashMap::new();
            for (name, shape) in &self.shapes {
                if !shape.exception {
                    continue;
                }
                index.insert(name.clone(), name.clone());
                if let Some(code) = shape.error.as_ref().and_then(|e| e.code.as_ref()) {
                    index.insert(code.clone(), name.clone());
                }
            }
            index
        });
        let name = index.get(code)?;
        self.shapes
            .get_key_value(name)
            .map(|(name, shape)| (name.as_str(), shape))
    }
}

/// `metadata` of a model.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    /// API version, sent by query clients as `Version`.
    pub api_version: String,
    /// Endpoint prefix, the signing name unless `signing_name` is set.
    pub endpoint_prefix: String,
    /// botocore's single protocol name.
    #[serde(default)]
    pub protocol: String,
    /// All protocols the service supports, in the model's order.
    #[serde(default)]
    pub protocols: Vec<String>,
    /// `1.0` or `1.1` for JSON services.
    #[serde(default)]
    pub json_version: Option<String>,
    /// The `X-Amz-Target` prefix of JSON services.
    #[serde(default)]
    pub target_prefix: Option<String>,
    /// The XML namespace of query responses.
    #[serde(default)]
    pub xml_namespace: Option<String>,
    /// The SigV4 signing name when it differs from the endpoint prefix.
    #[serde(default)]
    pub signing_name: Option<String>,
    /// Present (as an empty object) on query-compatible JSON services.
    #[serde(default)]
    pub aws_query_compatible: Option<serde_json::Value>,
    /// The service id used for `AWS_ENDPOINT_URL_<ID>`.
    #[serde(default)]
    pub service_id: Option<String>,
}

/// An operation of a model.
#[derive(Debug, Deserialize)]
pub struct Operation {
    /// The operation name, e.g. `CreateUser`.
    pub name: String,
    /// HTTP binding (method, request URI template, success status).
    #[serde(default)]
    pub http: Http,
    /// Input shape reference.
    #[serde(default)]
    pub input: Option<ShapeRef>,
    /// Output shape reference; for query services it carries `resultWrapper`.
    #[serde(default)]
    pub output: Option<ShapeRef>,
    /// Names of the error shapes the operation may return.
    #[serde(default)]
    pub errors: Vec<String>,
}

/// The `http` block of an operation.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Http {
    /// HTTP method.
    #[serde(default)]
    pub method: String,
    /// Request URI template, e.g. `/detector/{DetectorId}/findings`.
    #[serde(default)]
    pub request_uri: String,
    /// Success status (rest protocols).
    #[serde(default)]
    pub response_code: Option<u16>,
}

/// A reference to a shape, with the serialization traits set at the point of use.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShapeRef {
    /// The target shape name.
    pub shape: String,
    /// Wire name (XML element, query key, rest-json body key, header or label name).
    #[serde(default)]
    pub location_name: Option<String>,
    /// `uri`, `querystring`, `header`, `headers` or `statusCode` for rest protocols.
    #[serde(default)]
    pub location: Option<String>,
    /// Flattened XML/query list or map.
    #[serde(default)]
    pub flattened: bool,
    /// Timestamp format override (`iso8601`, `unixTimestamp`, `rfc822`).
    #[serde(default)]
    pub timestamp_format: Option<String>,
    /// The member is filled with a fresh token by SDKs when absent.
    #[serde(default)]
    pub idempotency_token: bool,
    /// Query output: the element that wraps the result (`CreateUserResult`).
    #[serde(default)]
    pub result_wrapper: Option<String>,
    /// EC2 query parameter name.
    #[serde(default)]
    pub query_name: Option<String>,
    /// Header or query member holding a JSON value (base64 in headers).
    #[serde(default)]
    pub jsonvalue: bool,
}

/// A structure member: its name plus the reference.
#[derive(Debug, Clone)]
pub struct Member {
    /// Member name as in the model (`UserName`).
    pub name: String,
    /// The reference with its serialization traits.
    pub target: ShapeRef,
}

impl Member {
    /// The name on the wire: `locationName` when set, else the member name.
    pub fn wire_name(&self) -> &str {
        self.target.location_name.as_deref().unwrap_or(&self.name)
    }
}

/// The kind of a shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShapeType {
    /// A structure with named members.
    Structure,
    /// A list of one member shape.
    List,
    /// A map from key shape to value shape.
    Map,
    /// A UTF-8 string.
    String,
    /// A 32-bit integer.
    Integer,
    /// A 64-bit integer.
    Long,
    /// A 16-bit integer (rare).
    Short,
    /// An 8-bit integer (rare).
    Byte,
    /// A double.
    Double,
    /// A float.
    Float,
    /// A boolean.
    Boolean,
    /// A point in time.
    Timestamp,
    /// Bytes, base64 on the wire.
    Blob,
    /// A free-form JSON document.
    Document,
    /// Any type this codec does not know; treated as a string.
    #[serde(other)]
    Unknown,
}

impl ShapeType {
    /// True for integer-like types.
    pub fn is_integer(self) -> bool {
        matches!(self, Self::Integer | Self::Long | Self::Short | Self::Byte)
    }
}

/// Error metadata of an exception shape.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorInfo {
    /// The code sent on the wire when it differs from the shape name (`NoSuchEntity`).
    #[serde(default)]
    pub code: Option<String>,
    /// HTTP status.
    #[serde(default)]
    pub http_status_code: Option<u16>,
    /// Client fault (`Sender`) or server fault (`Receiver`).
    #[serde(default)]
    pub sender_fault: Option<bool>,
}

/// A shape of a model.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Shape {
    /// The kind.
    #[serde(rename = "type")]
    pub kind: ShapeType,
    /// Structure members in model order.
    #[serde(default, deserialize_with = "ordered_members")]
    pub members: Vec<Member>,
    /// List member.
    #[serde(default)]
    pub member: Option<ShapeRef>,
    /// Map key.
    #[serde(default)]
    pub key: Option<ShapeRef>,
    /// Map value.
    #[serde(default)]
    pub value: Option<ShapeRef>,
    /// Names of required members.
    #[serde(default)]
    pub required: Vec<String>,
    /// Minimum length (strings, blobs, lists, maps) or value (numbers).
    #[serde(default)]
    pub min: Option<f64>,
    /// Maximum length or value.
    #[serde(default)]
    pub max: Option<f64>,
    /// Java regular expression the whole string must match.
    #[serde(default)]
    pub pattern: Option<String>,
    /// Allowed values of an enum string.
    #[serde(default, rename = "enum")]
    pub enum_values: Vec<String>,
    /// Error metadata of exception shapes.
    #[serde(default)]
    pub error: Option<ErrorInfo>,
    /// True for error shapes.
    #[serde(default)]
    pub exception: bool,
    /// True for server-fault error shapes.
    #[serde(default)]
    pub fault: bool,
    /// Flattened list or map (shape-level trait).
    #[serde(default)]
    pub flattened: bool,
    /// Timestamp format (shape-level trait).
    #[serde(default)]
    pub timestamp_format: Option<String>,
    /// The member bound to the whole HTTP body in rest protocols.
    #[serde(default)]
    pub payload: Option<String>,
    /// The compiled `pattern`; `None` inside when it could not be translated.
    #[serde(skip)]
    compiled: OnceLock<Option<Regex>>,
}

impl Shape {
    /// Finds a member by its model name.
    pub fn member(&self, name: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.name == name)
    }

    /// The compiled pattern with full-match semantics, or `None` when the shape has none or the
    /// Java regex could not be translated (such patterns are not enforced).
    pub fn regex(&self) -> Option<&Regex> {
        self.compiled
            .get_or_init(|| self.pattern.as_deref().and_then(super::pattern::compile_java))
            .as_ref()
    }
}

/// Deserializes `members` into a vector that keeps the model's order without an ordered-map dependency.
fn ordered_members<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<Member>, D::Error> {
    struct MembersVisitor;

    impl<'de> Visitor<'de> for MembersVisitor {
        type Value = Vec<Member>;

        fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
            formatter.write_str("a map of member names to shape references")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
            let mut members = Vec::with_capacity(access.size_hint().unwrap_or(4));
            while let Some((name, target)) = access.next_entry::<String, ShapeRef>()? {
                members.push(Member { name, target });
            }
            Ok(members)
        }
    }

    deserializer.deserialize_map(MembersVisitor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_embedded_model_loads_quickly_and_knows_its_protocol() {
        let cases = [
            ("iam", Protocol::Query, "2010-05-08", 176),
            ("sts", Protocol::Query, "2011-06-15", 11),
            ("kms", Protocol::Json, "2014-11-01", 54),
            ("cloudtrail", Protocol::Json, "2013-11-01", 60),
            ("logs", Protocol::Json, "2014-03-28", 113),
            ("monitoring", Protocol::Json, "2010-08-01", 46),
        ];
        for (name, protocol, version, operations) in cases {
            let started = std::time::Instant::now();
            let model = model(name).unwrap();
            println!("{name}: loaded in {:?}", started.elapsed());
            assert_eq!(model.protocol(), Some(protocol), "{name}");
            assert_eq!(model.metadata.api_version, version);
            assert_eq!(model.operations.len(), operations, "{name}");
            // The second call returns the cached instance.
            assert!(std::ptr::eq(model, super::model(name).unwrap()));
        }
        assert!(super::model("nosuch").is_none());
        assert!(model("monitoring").unwrap().is_query_compatible());
        assert!(model("monitoring").unwrap().supports(Protocol::Query));
        assert_eq!(model("kms").unwrap().json_version(), "1.1");
    }

    #[test]
    fn members_keep_model_order_and_errors_are_indexed_by_code() {
        let iam = model("iam").unwrap();
        let create_user = iam.shape("CreateUserRequest").unwrap();
        let names: Vec<&str> = create_user.members.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["Path", "UserName", "PermissionsBoundary", "Tags"]);
        let (shape_name, shape) = iam.error_shape("NoSuchEntity").unwrap();
        assert_eq!(shape_name, "NoSuchEntityException");
        assert_eq!(shape.error.as_ref().unwrap().http_status_code, Some(404));
        assert!(iam.error_shape("NoSuchEntityException").is_some());
        assert!(iam.error_shape("Nope").is_none());
    }
}
