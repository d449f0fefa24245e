//! Table-driven tests: the worked examples of the spec (section 8) and the CIS filters.

use super::*;

const APACHE: &str = r#"127.0.0.1 Prod frank [10/Oct/2000:13:25:15 -0700] "GET /index.html HTTP/1.0" 404 1534"#;
const ARRAYS: &str = r#"{"user":{"id":1},"users":[{"email":"John.Doe@example.com"}],"actions":["GET","PUT","DELETE"]}"#;

#[test]
fn spec_examples() {
    let cases: &[(&str, &str, bool)] = &[
        ("ERROR", "[ERROR 400] BAD REQUEST", true),
        ("ERROR", "error 400", false),
        ("ERROR ARGUMENTS", "[ERROR 419] MISSING ARGUMENTS", true),
        ("ERROR ARGUMENTS", "[ERROR 400] BAD REQUEST", false),
        ("?ERROR ?WARN", "WARN disk at 91", true),
        ("?ERROR ?WARN", "INFO all good", false),
        ("ERROR -ARGUMENTS", "[ERROR 420] INVALID ARGUMENTS", false),
        ("ERROR -ARGUMENTS", "[ERROR 500] INTERNAL", true),
        ("-DEBUG -TRACE", "INFO started", true),
        ("-DEBUG -TRACE", "DEBUG x", false),
        ("\"INTERNAL SERVER ERROR\"", "[ERROR 500] INTERNAL SERVER ERROR", true),
        ("\"INTERNAL SERVER ERROR\"", "[ERROR 500] INTERNAL ERROR", false),
        ("\"ERROR\" \"Exception\"", "ERROR: NullPointerException", true),
        ("\" \"", "anything at all", true),
        ("", "anything at all", true),
        ("AUTHORIZED", "[ERROR 401] UNAUTHORIZED REQUEST", false),
        ("ERROR", "ERRORS everywhere", false),
        ("ERROR", "ERROR: disk", true),
        ("%AUTHORIZED%", "[ERROR 401] UNAUTHORIZED REQUEST", true),
        ("%[Ee]rror|[Ff]ail%", "request ok", false),
        ("%[Ee]rror|[Ff]ail%", "request Failed", true),
        (r"%\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}%", "from 10.0.0.1 ok", true),
        (
            r#"{ $.eventType = "UpdateTrail" }"#,
            r#"{"eventType":"UpdateTrail","sourceIPAddress":"111.111.111.111"}"#,
            true,
        ),
        (
            r#"{ $.sourceIPAddress != 123.123.* }"#,
            r#"{"eventType":"UpdateTrail","sourceIPAddress":"111.111.111.111"}"#,
            true,
        ),
        (
            r#"{ $.sourceIPAddress != 111.111.* }"#,
            r#"{"eventType":"UpdateTrail","sourceIPAddress":"111.111.111.111"}"#,
            false,
        ),
        (
            r#"{ $.eventType = "UpdateTrail" }"#,
            r#"2024-01-01T00:00:00Z {"eventType":"UpdateTrail"}"#,
            false,
        ),
        (
            r#"{ $.arrayKey[0] = "value" }"#,
            r#"{"arrayKey":["value","another value"]}"#,
            true,
        ),
        (
            r#"{ $.arrayKey[1] = "value" }"#,
            r#"{"arrayKey":["value","another value"]}"#,
            false,
        ),
        (
            r#"{ $.objectList[1].id = 2 }"#,
            r#"{"objectList":[{"id":1},{"id":2}]}"#,
            true,
        ),
        (
            r#"{ $.objectList = "x" }"#,
            r#"{"objectList":[{"id":1},{"id":2}]}"#,
            false,
        ),
        (
            r#"{ $.objectList != "x" }"#,
            r#"{"objectList":[{"id":1},{"id":2}]}"#,
            false,
        ),
        (r#"{ $.SomeObject IS NULL }"#, r#"{"SomeObject":null}"#, true),
        (r#"{ $.SomeObject IS NULL }"#, r#"{"SomeObject":1}"#, false),
        (r#"{ $.SomeOtherObject NOT EXISTS }"#, r#"{"SomeObject":null}"#, true),
        (r#"{ $.SomeObject NOT EXISTS }"#, r#"{"SomeObject":null}"#, false),
        (r#"{ $.flag IS TRUE }"#, r#"{"flag":true}"#, true),
        (r#"{ $.flag IS FALSE }"#, r#"{"flag":true}"#, false),
        (r#"{ $.latency > 75 }"#, r#"{"latency":80}"#, true),
        (r#"{ $.latency > 75 }"#, r#"{"latency":50}"#, false),
        (r#"{ $.latency <= 50 }"#, r#"{"latency":50}"#, true),
        (r#"{ $.latency >= 50.5 }"#, r#"{"latency":50}"#, false),
        (r#"{ $.latency != 50 }"#, r#"{"latency":51}"#, true),
        (r#"{ $.latency < 75 }"#, r#"{"other":1}"#, false),
        (r#"{ $.latency != 75 }"#, r#"{"other":1}"#, false),
        (r#"{ $.number[0] = 1e-3 }"#, r#"{"number":[0.001]}"#, true),
        (r#"{ $.n = +5 }"#, r#"{"n":5}"#, true),
        (
            r#"{ ($.user.id = 2 && $.users[0].email = "nonmatch") || $.actions[2] = "GET" }"#,
            ARRAYS,
            false,
        ),
        (
            r#"{ ($.user.id = 1 && $.users[0].email = "John*") || $.actions[2] = "GET" }"#,
            ARRAYS,
            true,
        ),
        (r#"{ $.actions[2] = "DEL*" }"#, ARRAYS, true),
        (r#"{ $.user.id = * }"#, ARRAYS, true),
        (r#"{ $.user.missing = * }"#, ARRAYS, false),
        (r#"{ $.msg = "a\"b" }"#, r#"{"msg":"a\"b"}"#, true),
        (r#"{ $.msg = "line*" }"#, r#"{"msg":"line\nbreak"}"#, true),
        (
            r#"{ $.eventName = %Delete.*% }"#,
            r#"{"eventName":"DeleteTrail"}"#,
            true,
        ),
        (
            r#"{ $.eventName = %^Create% }"#,
            r#"{"eventName":"DeleteTrail"}"#,
            false,
        ),
        (r#"{ $.a = 1 }"#, r#"{"a":1"#, false),
        (r#"{ $.a = 1 }"#, r#"{"a":1} trailing"#, false),
        (r#"{ $.a = "x" }"#, "not json", false),
        (
            "[ip, user, username, timestamp, request = *.html*, status_code = 4*, bytes]",
            APACHE,
            true,
        ),
        ("[..., status_code = 404 || status_code = 410, bytes]", APACHE, true),
        ("[..., status_code = 500 || status_code = 410, bytes]", APACHE, false),
        (
            "[ip, user, username, timestamp, request, status_code, bytes > 2000]",
            APACHE,
            false,
        ),
        (
            "[ip, user, username, timestamp, request, status_code, bytes > 1000]",
            APACHE,
            true,
        ),
        (
            "[ip, user, username, timestamp, request, status_code, bytes, extra]",
            APACHE,
            false,
        ),
        ("[ip = 127.0.0.*, ...]", APACHE, true),
        ("[..., bytes = %^15%]", APACHE, true),
        ("[w1=ERROR, w2]", "ERROR disk full on /var", true),
        ("[w1=ERROR || W1=WARNING, w2]", "WARNING disk full", true),
        ("[w1=ERROR || W1=WARNING, w2]", "INFO disk full", false),
        ("[w1, w2 > 3 && w2 < 10]", "x 5", true),
        ("[w1, w2 > 3 && w2 < 10]", "x 11", false),
        ("[w1, w2 > 3]", "x abc", false),
    ];
    for (pattern, message, want) in cases {
        let compiled = FilterPattern::parse(pattern).unwrap_or_else(|e| panic!("{pattern}: {e}"));
        assert_eq!(compiled.matches(message), *want, "pattern {pattern} on {message}");
    }
}

#[test]
fn extracted_values_of_delimited_patterns() {
    let p =
        FilterPattern::parse("[ip, user, username, timestamp, request = *.html*, status_code = 4*, bytes]").unwrap();
    let values = p.match_extract(APACHE).unwrap();
    let want = [
        ("$ip", "127.0.0.1"),
        ("$user", "Prod"),
        ("$username", "frank"),
        ("$timestamp", "10/Oct/2000:13:25:15 -0700"),
        ("$request", "GET /index.html HTTP/1.0"),
        ("$status_code", "404"),
        ("$bytes", "1534"),
    ];
    for (name, value) in want {
        assert_eq!(values.get(name).map(String::as_str), Some(value), "{name}");
    }
    let rest = FilterPattern::parse("[w1=ERROR, w2]").unwrap();
    let values = rest.match_extract("ERROR disk full on /var").unwrap();
    assert_eq!(values.get("$w2").map(String::as_str), Some("disk full on /var"));
    let ellipsis = FilterPattern::parse("[..., status, bytes]").unwrap();
    let values = ellipsis.match_extract(APACHE).unwrap();
    assert_eq!(values.get("$status").map(String::as_str), Some("404"));
    assert_eq!(values.len(), 2);
}

#[test]
fn invalid_patterns_are_rejected() {
    let cases = [
        "[a, b = 4* && c > 1]",
        "{ $.a = }",
        "{ $.a EXISTS }",
        "{ $.a IS NOT NULL }",
        "{ $.a = 1 ",
        "{ a = 1 }",
        "{ ($.a = 1 }",
        "{ $.a > \"text\" }",
        "{ $.a[x] = 1 }",
        "%(group)%",
        "\"unterminated",
        "[a,, b]",
        "{ $.a = %x% && $.b = %y% && $.c = %z% }",
    ];
    for pattern in cases {
        assert!(FilterPattern::parse(pattern).is_err(), "{pattern} should be rejected");
    }
    assert!(FilterPattern::parse(&"a".repeat(1025)).is_err());
}

fn record(fields: &str) -> String {
    format!(r#"{{"eventVersion":"1.08",{fields},"awsRegion":"us-east-1","sourceIPAddress":"10.0.0.1"}}"#)
}

#[test]
fn cis_filters_fire_only_on_intended_records() {
    let unauthorized = r#"{ ($.errorCode = "*UnauthorizedOperation") || ($.errorCode = "AccessDenied*") }"#;
    let unauthorized_full = r#"{ ($.errorCode = "*UnauthorizedOperation") || ($.errorCode = "AccessDenied*") && ($.sourceIPAddress != "delivery.logs.amazonaws.com") && ($.eventName != "HeadBucket") }"#;
    let no_mfa = r#"{ ($.eventName = "ConsoleLogin") && ($.additionalEventData.MFAUsed != "Yes") }"#;
    let root = r#"{ $.userIdentity.type = "Root" && $.userIdentity.invokedBy NOT EXISTS && $.eventType != "AwsServiceEvent" }"#;
    let iam = "{($.eventName=DeleteGroupPolicy)||($.eventName=DeleteRolePolicy)||($.eventName=DeleteUserPolicy)||($.eventName=PutGroupPolicy)||($.eventName=PutRolePolicy)||($.eventName=PutUserPolicy)||($.eventName=CreatePolicy)||($.eventName=DeletePolicy)||($.eventName=CreatePolicyVersion)||($.eventName=DeletePolicyVersion)||($.eventName=AttachRolePolicy)||($.eventName=DetachRolePolicy)||($.eventName=AttachUserPolicy)||($.eventName=DetachUserPolicy)||($.eventName=AttachGroupPolicy)||($.eventName=DetachGroupPolicy)}";
    let trail = "{ ($.eventName = CreateTrail) || ($.eventName = UpdateTrail) || ($.eventName = DeleteTrail) || ($.eventName = StartLogging) || ($.eventName = StopLogging) }";
    let console_fail = r#"{ ($.eventName = ConsoleLogin) && ($.errorMessage = "Failed authentication") }"#;
    let kms = "{ ($.eventSource = kms.amazonaws.com) && (($.eventName = DisableKey) || ($.eventName = ScheduleKeyDeletion)) }";
    let s3 = "{ ($.eventSource = s3.amazonaws.com) && (($.eventName = PutBucketAcl) || ($.eventName = PutBucketPolicy) || ($.eventName = PutBucketCors) || ($.eventName = PutBucketLifecycle) || ($.eventName = PutBucketReplication) || ($.eventName = DeleteBucketPolicy) || ($.eventName = DeleteBucketCors) || ($.eventName = DeleteBucketLifecycle) || ($.eventName = DeleteBucketReplication)) }";
    let config = "{ ($.eventSource = config.amazonaws.com) && (($.eventName = StopConfigurationRecorder) || ($.eventName = DeleteDeliveryChannel) || ($.eventName = PutDeliveryChannel) || ($.eventName = PutConfigurationRecorder)) }";

    let root_login = record(
        r#""userIdentity":{"type":"Root","arn":"arn:aws:iam::1:root"},"eventName":"ConsoleLogin","eventType":"AwsConsoleSignIn","additionalEventData":{"MFAUsed":"No"}"#,
    );
    let root_by_service = record(
        r#""userIdentity":{"type":"Root","invokedBy":"cloudtrail.amazonaws.com"},"eventName":"GetBucketAcl","eventType":"AwsApiCall""#,
    );
    let user_mfa_login = record(
        r#""userIdentity":{"type":"IAMUser"},"eventName":"ConsoleLogin","eventType":"AwsConsoleSignIn","additionalEventData":{"MFAUsed":"Yes"}"#,
    );
    let failed_login = record(
        r#""userIdentity":{"type":"IAMUser"},"eventName":"ConsoleLogin","errorMessage":"Failed authentication","additionalEventData":{"MFAUsed":"Yes"}"#,
    );
    let denied = record(
        r#""userIdentity":{"type":"IAMUser"},"eventSource":"iam.amazonaws.com","eventName":"CreateUser","errorCode":"AccessDenied","eventType":"AwsApiCall""#,
    );
    let unauthorized_op = record(
        r#""userIdentity":{"type":"IAMUser"},"eventSource":"ec2.amazonaws.com","eventName":"RunInstances","errorCode":"Client.UnauthorizedOperation""#,
    );
    let put_role_policy = record(
        r#""userIdentity":{"type":"IAMUser"},"eventSource":"iam.amazonaws.com","eventName":"PutRolePolicy","eventType":"AwsApiCall""#,
    );
    let get_role = record(
        r#""userIdentity":{"type":"IAMUser"},"eventSource":"iam.amazonaws.com","eventName":"GetRolePolicy","eventType":"AwsApiCall""#,
    );
    let stop_logging = record(
        r#""userIdentity":{"type":"IAMUser"},"eventSource":"cloudtrail.amazonaws.com","eventName":"StopLogging""#,
    );
    let schedule_deletion = record(
        r#""userIdentity":{"type":"IAMUser"},"eventSource":"kms.amazonaws.com","eventName":"ScheduleKeyDeletion""#,
    );
    let kms_encrypt =
        record(r#""userIdentity":{"type":"IAMUser"},"eventSource":"kms.amazonaws.com","eventName":"Encrypt""#);
    let put_bucket_policy =
        record(r#""userIdentity":{"type":"IAMUser"},"eventSource":"s3.amazonaws.com","eventName":"PutBucketPolicy""#);
    let config_stop = record(
        r#""userIdentity":{"type":"IAMUser"},"eventSource":"config.amazonaws.com","eventName":"StopConfigurationRecorder""#,
    );
    let head_bucket_denied = record(
        r#""userIdentity":{"type":"IAMUser"},"eventSource":"s3.amazonaws.com","eventName":"HeadBucket","errorCode":"AccessDenied""#,
    );

    let all = [
        ("root_login", &root_login),
        ("root_by_service", &root_by_service),
        ("user_mfa_login", &user_mfa_login),
        ("failed_login", &failed_login),
        ("denied", &denied),
        ("unauthorized_op", &unauthorized_op),
        ("put_role_policy", &put_role_policy),
        ("get_role", &get_role),
        ("stop_logging", &stop_logging),
        ("schedule_deletion", &schedule_deletion),
        ("kms_encrypt", &kms_encrypt),
        ("put_bucket_policy", &put_bucket_policy),
        ("config_stop", &config_stop),
        ("head_bucket_denied", &head_bucket_denied),
    ];
    let expected: &[(&str, &[&str])] = &[
        (unauthorized, &["denied", "unauthorized_op", "head_bucket_denied"]),
        // `A || (B && C && D)`: the HeadBucket exclusion applies only to AccessDenied*.
        (unauthorized_full, &["denied", "unauthorized_op"]),
        (no_mfa, &["root_login"]),
        (root, &["root_login"]),
        (iam, &["put_role_policy"]),
        (trail, &["stop_logging"]),
        (console_fail, &["failed_login"]),
        (kms, &["schedule_deletion"]),
        (s3, &["put_bucket_policy"]),
        (config, &["config_stop"]),
    ];
    for (pattern, want) in expected {
        let compiled = FilterPattern::parse(pattern).unwrap_or_else(|e| panic!("{pattern}: {e}"));
        let got: Vec<&str> = all
            .iter()
            .filter(|(_, msg)| compiled.matches(msg))
            .map(|(name, _)| *name)
            .collect();
        assert_eq!(&got, want, "pattern {pattern}");
    }
}

#[test]
fn json_path_values_for_metric_values() {
    let msg = r#"{"latency":81.5,"a":{"b":["x",{"c":"7"}]},"o":{}}"#;
    assert_eq!(json_path_value(msg, "$.latency").as_deref(), Some("81.5"));
    assert_eq!(json_path_value(msg, "$.a.b[1].c").as_deref(), Some("7"));
    assert_eq!(json_path_value(msg, "$.o"), None);
    assert_eq!(json_path_value(msg, "$.missing"), None);
    assert_eq!(json_path_value("nope", "$.latency"), None);
}

#[test]
fn glob_table() {
    let cases: &[(&str, &str, bool)] = &[
        ("abc", "abc", true),
        ("abc", "abcd", false),
        ("a*", "abcd", true),
        ("*d", "abcd", true),
        ("*c*", "abcd", true),
        ("a*d", "abcd", true),
        ("a*c*e", "abcde", true),
        ("a*c*e", "abcd", false),
        ("ab*ba", "aba", false),
        ("*", "", true),
        ("", "", true),
        ("", "x", false),
    ];
    for (glob, text, want) in cases {
        assert_eq!(Glob::new(glob).matches(text.as_bytes()), *want, "{glob} on {text}");
    }
}

/// `IS NULL`, `NOT EXISTS` and presence tests as the CloudWatch Logs "filter and pattern syntax"
/// page describes them: `IS NULL` matches only a JSON `null`, `NOT EXISTS` only an absent path
/// (a present `null`, object or array exists), `= *` is how presence is written, and the page's
/// unsupported `EXISTS` and `IS NOT` are rejected rather than guessed at.
#[test]
fn presence_selectors_follow_the_docs() {
    let cases: &[(&str, &str, bool)] = &[
        ("{ $.a IS NULL }", r#"{"a":null}"#, true),
        ("{ $.a IS NULL }", r#"{"a":"null"}"#, false),
        ("{ $.a IS NULL }", r#"{"b":1}"#, false),
        ("{ $.a IS NULL }", r#"{"a":{}}"#, false),
        ("{ $.a.b IS NULL }", r#"{"a":{"b":null}}"#, true),
        ("{ $.a[1] IS NULL }", r#"{"a":[1,null]}"#, true),
        ("{ $.a NOT EXISTS }", r#"{"b":1}"#, true),
        ("{ $.a NOT EXISTS }", r#"{"a":null}"#, false),
        ("{ $.a NOT EXISTS }", r#"{"a":{"x":1}}"#, false),
        ("{ $.a NOT EXISTS }", r#"{"a":[]}"#, false),
        ("{ $.a.b NOT EXISTS }", r#"{"a":"text"}"#, true),
        ("{ $.a.b NOT EXISTS }", r#"{"a":{"c":1}}"#, true),
        ("{ $.a[2] NOT EXISTS }", r#"{"a":[1,2]}"#, true),
        ("{ $.a[1] NOT EXISTS }", r#"{"a":[1,2]}"#, false),
        ("{ $.a NOT EXISTS }", "not json", false),
        ("{ $.a = * }", r#"{"a":"x"}"#, true),
        ("{ $.a = * }", r#"{"a":3}"#, true),
        ("{ $.a = * }", r#"{"b":3}"#, false),
        ("{ $.a = * }", r#"{"a":{"x":1}}"#, false),
        ("{ $.a IS NULL || $.a NOT EXISTS }", r#"{"a":null}"#, true),
        ("{ $.a IS NULL || $.a NOT EXISTS }", r#"{}"#, true),
        ("{ $.a IS NULL || $.a NOT EXISTS }", r#"{"a":0}"#, false),
        ("{ ($.a NOT EXISTS) && ($.b IS NULL) }", r#"{"b":null}"#, true),
        (
            r#"{ $.userIdentity.invokedBy NOT EXISTS && $.userIdentity.type = "Root" }"#,
            r#"{"userIdentity":{"type":"Root","invokedBy":"cloudtrail.amazonaws.com"}}"#,
            false,
        ),
    ];
    for (pattern, message, want) in cases {
        let compiled = FilterPattern::parse(pattern).unwrap_or_else(|e| panic!("{pattern}: {e:?}"));
        assert_eq!(compiled.matches(message), *want, "{pattern} on {message}");
    }
    for rejected in [
        "{ $.a EXISTS }",
        "{ $.a IS NOT NULL }",
        "{ $.a IS NOT EXISTS }",
        "{ $.a NOT NULL }",
        "{ $.a IS }",
        "{ $.a NOT }",
        "{ $.a IS NULL NULL }",
    ] {
        assert!(FilterPattern::parse(rejected).is_err(), "{rejected} must be rejected");
    }
}
