//! The Milvus token from AWS Secrets Manager, read at run time.
//!
//! A token resolved into the function's environment at deploy time (`{{resolve:secretsmanager}}`)
//! is readable by anyone who may read the function's configuration, and a rotation needs a
//! redeploy. So the deployed functions get only the secret's id (`MILVUS_TOKEN_SECRET_ID`) and
//! the right to read it; the value is fetched when the index first connects and kept for the
//! container's life (a rotated secret reaches new containers; old ones keep working until the
//! old token is revoked, after which their next connection fails and the container is replaced).
//!
//! Local tests point the SDK at an emulator with the standard `AWS_ENDPOINT_URL_SECRETS_MANAGER`.

use crate::deadline::{self, Service};
use crate::{Error, Result};

/// Reads the secret and returns the Milvus token it holds.
pub async fn milvus_token(secret_id: &str) -> Result<String> {
    let shared = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let mut config = aws_sdk_secretsmanager::config::Builder::from(&shared);
    if shared.region().is_none() {
        config = config.region(aws_sdk_secretsmanager::config::Region::new("us-east-1"));
    }
    let client = aws_sdk_secretsmanager::Client::from_conf(config.build());
    let answer = deadline::bounded(
        Service::Secrets,
        "reading the Milvus token from Secrets Manager",
        async {
            client
                .get_secret_value()
                .secret_id(secret_id)
                .send()
                .await
                .map_err(|e| classify(secret_id, e))
        },
    )
    .await?;
    let value = answer.secret_string().ok_or_else(|| {
        Error::Config(format!(
            "secret {secret_id} has no SecretString (binary secrets are not read)"
        ))
    })?;
    token_from_secret(secret_id, value)
}

/// The token a secret's text holds: JSON with `token` (a Zilliz API key or `user:password`), JSON
/// with `username` and `password` (Secrets Manager's own credential layout), or the bare token.
pub fn token_from_secret(secret_id: &str, value: &str) -> Result<String> {
    let value = value.trim();
    if value.is_empty() {
        return Err(Error::Config(format!("secret {secret_id} is empty")));
    }
    if !value.starts_with('{') {
        return Ok(value.to_owned());
    }
    let json: serde_json::Value = serde_json::from_str(value)
        .map_err(|e| Error::Config(format!("secret {secret_id} looks like JSON but does not parse: {e}")))?;
    let text = |key: &str| json.get(key).and_then(|v| v.as_str()).filter(|v| !v.is_empty());
    match (text("token"), text("username"), text("password")) {
        (Some(token), _, _) => Ok(token.to_owned()),
        (None, Some(user), Some(password)) => Ok(format!("{user}:{password}")),
        _ => Err(Error::Config(format!(
            "secret {secret_id} has neither a \"token\" key nor \"username\" and \"password\""
        ))),
    }
}

fn classify<E>(secret_id: &str, err: aws_sdk_secretsmanager::error::SdkError<E>) -> Error
where
    E: aws_sdk_secretsmanager::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    use aws_sdk_secretsmanager::error::SdkError;
    match &err {
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or("");
            match code {
                // The deployment is wrong (no such secret, no permission, KMS key denied):
                // retrying will not fix it, but it is said plainly.
                "ResourceNotFoundException" | "AccessDeniedException" | "DecryptionFailure" => {
                    Error::Config(format!("reading secret {secret_id}: {code}"))
                }
                _ => Error::StoreUnavailable(format!("reading secret {secret_id}: {code}")),
            }
        }
        _ => Error::StoreUnavailable(format!("reading secret {secret_id}: {err}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_read_from_each_secret_layout() {
        assert_eq!(token_from_secret("s", r#"{"token":"abc"}"#).unwrap(), "abc");
        assert_eq!(
            token_from_secret("s", r#"{"username":"u","password":"p"}"#).unwrap(),
            "u:p"
        );
        assert_eq!(token_from_secret("s", " root:Milvus \n").unwrap(), "root:Milvus");
        for bad in ["", "{", r#"{"user":"x"}"#, r#"{"token":""}"#] {
            let err = token_from_secret("s", bad).unwrap_err();
            assert_eq!(err.code(), "configuration", "{bad}: {err}");
        }
    }
}
