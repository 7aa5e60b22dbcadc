//! SageMaker's own facts, shared by the environment manager, the load
//! manager and the simulator so that all three agree: resource name rules,
//! the payload limit, the variant perfsize deploys, how AWS error codes read.

/// The largest request body SageMaker accepts for a real-time invocation.
pub const MAX_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;

/// The one production variant perfsize deploys (and CloudWatch's dimension).
pub const VARIANT_NAME: &str = "AllTraffic";

/// SageMaker's rule for resource names: `^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}`.
pub fn valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        && bytes[0] != b'-'
        && bytes[bytes.len() - 1] != b'-'
}

/// What an AWS error code means to perfsize, classified once, here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AwsErrorKind {
    /// The resource named does not exist. SageMaker says so with a
    /// ValidationException whose message starts "Could not find"; other
    /// services use a code of their own.
    NotFound,
    /// A create found the resource already there.
    AlreadyExists,
    /// Another operation on the resource is still running.
    InProgress,
    /// The request itself is wrong: the caller's input.
    Validation,
    /// An account quota (instances, endpoints) is reached.
    LimitExceeded,
    /// Too many requests; retry later.
    Throttled,
    /// The credentials are missing, wrong, expired or not allowed.
    Credentials,
    /// Anything else: AWS failed us.
    Other,
}

impl AwsErrorKind {
    /// Classifies an error by its code; for SageMaker's catch-all
    /// ValidationException, by the documented start of its message.
    pub fn classify(code: &str, message: &str) -> AwsErrorKind {
        match code {
            "ValidationException" if message.starts_with("Could not find") => AwsErrorKind::NotFound,
            "ValidationException" if message.contains("already existing") => AwsErrorKind::AlreadyExists,
            "ValidationException" if message.contains("in-progress") => AwsErrorKind::InProgress,
            "ValidationException" | "ValidationError" | "InvalidParameterValue" | "NotUsable" => AwsErrorKind::Validation,
            "ResourceNotFound"
            | "ResourceNotFoundException"
            | "ObjectNotFoundException"
            | "NoSuchKey"
            | "NoSuchBucket"
            | "NotFound" => AwsErrorKind::NotFound,
            "ResourceInUse" | "ConflictException" => AwsErrorKind::InProgress,
            "ResourceLimitExceeded" | "LimitExceededException" | "ServiceQuotaExceededException" => AwsErrorKind::LimitExceeded,
            "ThrottlingException" | "Throttling" | "TooManyRequestsException" | "RequestLimitExceeded" => AwsErrorKind::Throttled,
            "ExpiredToken"
            | "ExpiredTokenException"
            | "UnrecognizedClientException"
            | "InvalidClientTokenId"
            | "AccessDenied"
            | "AccessDeniedException"
            | "SignatureDoesNotMatch"
            | "IncompleteSignature" => AwsErrorKind::Credentials,
            _ => AwsErrorKind::Other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_sagemakers_rule() {
        assert!(valid_name("perfsize-1-ml-m5-large-2"));
        assert!(!valid_name("-lead") && !valid_name("trail-") && !valid_name("under_score") && !valid_name(""));
        assert!(!valid_name(&"a".repeat(64)));
    }

    #[test]
    fn error_codes_are_classified_once() {
        let kind = AwsErrorKind::classify;
        assert_eq!(kind("ValidationException", "Could not find endpoint \"arn:…\"."), AwsErrorKind::NotFound);
        assert_eq!(kind("ValidationException", "Cannot create already existing endpoint"), AwsErrorKind::AlreadyExists);
        assert_eq!(kind("ValidationException", "1 validation error detected"), AwsErrorKind::Validation);
        assert_eq!(kind("ResourceLimitExceeded", "account-level service limit"), AwsErrorKind::LimitExceeded);
        assert_eq!(kind("ThrottlingException", "Rate exceeded"), AwsErrorKind::Throttled);
        assert_eq!(kind("ExpiredTokenException", "expired"), AwsErrorKind::Credentials);
        assert_eq!(kind("InternalFailure", "boom"), AwsErrorKind::Other);
    }
}
