//! The floor for init-time measurements (scripts/bench/lambda_init.py): a Lambda function that starts tokio and
//! the Lambda runtime client and does nothing else. Whatever licensewatch's functions take beyond it is their own.

use lambda_runtime::{LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::run(service_fn(|_: LambdaEvent<Value>| async {
        Ok::<Value, lambda_runtime::Error>(Value::Null)
    }))
    .await
}
