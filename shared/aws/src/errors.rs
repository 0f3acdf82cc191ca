//! SDK errors as store errors that know whether a retry can help.

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};

use crate::error::StoreError;

/// Maps an SDK error to a store error that knows whether a retry can help: throttling, timeouts, connection
/// failures and 5xx are retryable (`Busy`); everything else (missing table, access denied, bad request) is not.
pub(crate) fn sdk_error<E, R>(what: &str, e: SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug,
{
    let retryable = match &e {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(s) => {
            let code = s.err().code().unwrap_or_default();
            code.contains("Throttl")
                || code == "ProvisionedThroughputExceededException"
                || code == "RequestLimitExceeded"
                || code == "InternalServerError"
                || code == "ServiceUnavailable"
                || code == "SlowDown"
                || code == "TransactionConflictException"
                || code == "ConditionalRequestConflict"
        }
        _ => false,
    };
    let message = format!(
        "{what}: {}",
        aws_sdk_dynamodb::error::DisplayErrorContext(&e)
    );
    if retryable {
        StoreError::Busy(message)
    } else {
        StoreError::Database(message)
    }
}

/// The error code of a service error, if it is one.
pub(crate) fn error_code<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> Option<String> {
    match e {
        SdkError::ServiceError(s) => s.err().code().map(str::to_string),
        _ => None,
    }
}
