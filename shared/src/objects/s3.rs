//! The AWS SDK implementation of the object traits.

use std::time::Duration;

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::Client;

use super::{
    post_policy, FetchedObject, ObjectSettings, ObjectSource, ObjectState, ObjectSummary, ObjectVersion,
    PostConditions, PresignedPost, Presigner,
};
use crate::deadline::{bounded, Service::S3};
use crate::{Error, Result};

/// S3 (or an S3-compatible endpoint). Cheap to clone; create once per process.
#[derive(Debug, Clone)]
pub struct S3Objects {
    client: Client,
    presign_expiry: Duration,
    /// What signs upload forms (the SDK signs everything else itself).
    credentials: Option<aws_credential_types::provider::SharedCredentialsProvider>,
    /// Where ingest status records live in each bucket (`status_store`); empty: not kept.
    pub(super) status_prefix: String,
    /// Where thumbnails live in each bucket (`thumbnail_store`); empty: none.
    pub(super) thumbnail_prefix: String,
}

impl S3Objects {
    /// Credentials and region come from the standard AWS chain (env, profile, Lambda role).
    pub async fn connect(settings: &ObjectSettings) -> Self {
        let shared = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        let mut config = aws_sdk_s3::config::Builder::from(&shared).force_path_style(settings.path_style);
        if let Some(endpoint) = &settings.endpoint {
            config = config.endpoint_url(endpoint);
        }
        if shared.region().is_none() {
            // Local emulators accept any region; AWS itself always sets one in Lambda.
            config = config.region(aws_sdk_s3::config::Region::new("us-east-1"));
        }
        Self {
            client: Client::from_conf(config.build()),
            presign_expiry: settings.presign_expiry,
            credentials: shared.credentials_provider(),
            status_prefix: settings.status_prefix.clone(),
            thumbnail_prefix: settings.thumbnail_prefix.clone(),
        }
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Every object under `prefix`, following continuation tokens.
    pub async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<ObjectSummary>> {
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let (page, next) = self.list_page(bucket, prefix, after.as_deref(), 1000).await?;
            out.extend(page);
            match next {
                Some(key) => after = Some(key),
                None => return Ok(out),
            }
        }
    }

    /// One page of keys under `prefix` that sort after `start_after`, in key order, and the key
    /// to continue after when more follow. Resumable from any key (S3's `StartAfter`). Ingest
    /// status records are left out unless `prefix` is inside their prefix: they are
    /// clipsearch's own notes, never images to index or reconcile.
    pub async fn list_page(
        &self,
        bucket: &str,
        prefix: &str,
        start_after: Option<&str>,
        max_keys: i32,
    ) -> Result<(Vec<ObjectSummary>, Option<String>)> {
        let list = self
            .client
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .set_start_after(start_after.map(str::to_owned))
            .max_keys(max_keys)
            .send();
        let page = bounded(S3, &format!("listing s3://{bucket}/{prefix}"), async {
            list.await.map_err(|e| classify(e, bucket, prefix))
        })
        .await?;
        let objects = page
            .contents()
            .iter()
            .filter_map(|obj| {
                let key = obj.key()?.to_string();
                let size = obj.size().unwrap_or(0).max(0) as u64;
                Some(ObjectSummary {
                    key,
                    size,
                    version: ObjectVersion {
                        etag: obj.e_tag().unwrap_or_default().to_string(),
                        size,
                        modified_ms: obj.last_modified().map(millis).unwrap_or(0),
                    },
                })
            })
            .collect::<Vec<_>>();
        let next = if page.is_truncated().unwrap_or(false) {
            objects.last().map(|o| o.key.clone())
        } else {
            None
        };
        // ingest's own records (status, thumbnails) are not images to index, unless the listing
        // asks for them by prefix.
        let hidden = |own: &str, key: &str| !own.is_empty() && !prefix.starts_with(own) && key.starts_with(own);
        let objects = objects
            .into_iter()
            .filter(|o| !hidden(&self.status_prefix, &o.key) && !hidden(&self.thumbnail_prefix, &o.key))
            .collect();
        Ok((objects, next))
    }

    /// Uploads bytes (used by the demo, the tests and nothing in production paths).
    pub async fn put(&self, bucket: &str, key: &str, bytes: Vec<u8>, content_type: &str) -> Result<()> {
        let put = self
            .client
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_type(content_type)
            .body(bytes.into())
            .send();
        bounded(S3, &format!("PUT s3://{bucket}/{key}"), async {
            put.await.map_err(|e| classify(e, bucket, key))
        })
        .await?;
        Ok(())
    }

    /// Starts a GET: the headers are there, the body still streams. Not bounded by the
    /// deadline here: `fetch` bounds the whole read, body included; the model copy runs at
    /// cold start, outside any invocation.
    async fn get(&self, bucket: &str, key: &str) -> Result<aws_sdk_s3::operation::get_object::GetObjectOutput> {
        self.client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| classify(e, bucket, key))
    }

    /// Streams an object into a file (model files are hundreds of MB: never held in memory).
    pub async fn download_to(&self, bucket: &str, key: &str, path: &std::path::Path) -> Result<u64> {
        use std::io::Write;
        let response = self.get(bucket, key).await?;
        let partial = path.with_extension("part");
        let mut file =
            std::fs::File::create(&partial).map_err(|e| Error::io(format!("creating {}", partial.display()), e))?;
        let mut body = response.body;
        let mut written = 0u64;
        while let Some(chunk) = body
            .try_next()
            .await
            .map_err(|e| Error::ObjectStoreUnavailable(format!("reading s3://{bucket}/{key}: {e}")))?
        {
            file.write_all(&chunk)
                .map_err(|e| Error::io(format!("writing {}", partial.display()), e))?;
            written += chunk.len() as u64;
        }
        std::fs::rename(&partial, path).map_err(|e| Error::io(format!("renaming {}", partial.display()), e))?;
        Ok(written)
    }

    pub async fn delete(&self, bucket: &str, key: &str) -> Result<()> {
        let delete = self.client.delete_object().bucket(bucket).key(key).send();
        bounded(S3, &format!("DELETE s3://{bucket}/{key}"), async {
            delete.await.map_err(|e| classify(e, bucket, key))
        })
        .await?;
        Ok(())
    }

    fn presigning(&self) -> Result<PresigningConfig> {
        PresigningConfig::expires_in(self.presign_expiry).map_err(|e| Error::Config(format!("presign expiry: {e}")))
    }
}

impl ObjectSource for S3Objects {
    async fn fetch(&self, bucket: &str, key: &str, max_bytes: u64) -> Result<FetchedObject> {
        // The body too: a stalled download must end before the invocation does.
        bounded(
            S3,
            &format!("reading s3://{bucket}/{key}"),
            self.fetch_unbounded(bucket, key, max_bytes),
        )
        .await
    }

    async fn head(&self, bucket: &str, key: &str) -> Result<ObjectState> {
        bounded(
            S3,
            &format!("HEAD s3://{bucket}/{key}"),
            self.head_unbounded(bucket, key),
        )
        .await
    }
}

impl S3Objects {
    async fn fetch_unbounded(&self, bucket: &str, key: &str, max_bytes: u64) -> Result<FetchedObject> {
        let response = self.get(bucket, key).await?;
        // The headers arrive before the body: refuse an oversized object without downloading it.
        let size = response.content_length().unwrap_or(0).max(0) as u64;
        if size > max_bytes {
            return Err(Error::ImageTooLarge { size, limit: max_bytes });
        }
        let content_type = response.content_type().map(str::to_string);
        let version = ObjectVersion {
            etag: response.e_tag().unwrap_or_default().to_string(),
            size,
            modified_ms: response.last_modified().map(millis).unwrap_or(0),
        };
        let mut body = response.body;
        let mut bytes = Vec::with_capacity(size as usize);
        while let Some(chunk) = body
            .try_next()
            .await
            .map_err(|e| Error::ObjectStoreUnavailable(format!("reading s3://{bucket}/{key}: {e}")))?
        {
            bytes.extend_from_slice(&chunk);
            // A missing or lying Content-Length must not let a huge body through either.
            if bytes.len() as u64 > max_bytes {
                return Err(Error::ImageTooLarge {
                    size: bytes.len() as u64,
                    limit: max_bytes,
                });
            }
        }
        Ok(FetchedObject {
            bytes,
            content_type,
            version,
        })
    }

    async fn head_unbounded(&self, bucket: &str, key: &str) -> Result<ObjectState> {
        let response = self.client.head_object().bucket(bucket).key(key).send().await;
        match response.map_err(|e| classify(e, bucket, key)) {
            Ok(head) => {
                let size = head.content_length().unwrap_or(0).max(0) as u64;
                Ok(ObjectState::Present(ObjectVersion {
                    etag: head.e_tag().unwrap_or_default().to_string(),
                    size,
                    modified_ms: head.last_modified().map(millis).unwrap_or(0),
                }))
            }
            Err(Error::ObjectMissing { .. }) => Ok(ObjectState::Absent),
            // Without s3:ListBucket, S3 answers 403 rather than 404 for a missing key; a
            // listing of exactly that key tells the two apart where the role may list.
            Err(Error::ObjectAccess(reason)) => match self.list_page(bucket, key, None, 1).await {
                Ok((page, _)) if page.first().is_some_and(|o| o.key == key) => Ok(ObjectState::Unreadable(reason)),
                Ok(_) => Ok(ObjectState::Absent),
                Err(Error::ObjectAccess(_)) => Ok(ObjectState::Unreadable(format!(
                    "{reason} (and s3:ListBucket is not granted, so a missing key cannot be told from a forbidden one)"
                ))),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        }
    }
}

fn millis(time: &aws_sdk_s3::primitives::DateTime) -> i64 {
    time.to_millis().unwrap_or(0)
}

impl Presigner for S3Objects {
    async fn presign_get(&self, bucket: &str, key: &str) -> Result<String> {
        let request = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .presigned(self.presigning()?)
            .await
            .map_err(|e| classify(e, bucket, key))?;
        Ok(request.uri().to_string())
    }

    async fn presign_post(&self, conditions: &PostConditions<'_>) -> Result<PresignedPost> {
        use aws_credential_types::provider::ProvideCredentials;
        let config = self.client.config();
        let region = config
            .region()
            .map(|r| r.as_ref().to_owned())
            .unwrap_or_else(|| "us-east-1".into());
        let provider = self
            .credentials
            .as_ref()
            .ok_or_else(|| Error::Config("no AWS credentials to sign uploads with".into()))?;
        let credentials = bounded(S3, "credentials for signing an upload", async {
            provider
                .provide_credentials()
                .await
                .map_err(|e| Error::ObjectAccess(format!("credentials for signing an upload: {e}")))
        })
        .await?;
        // The SDK knows how this client addresses the bucket (virtual-hosted on AWS, path-style
        // on emulators): a presigned GET of the key tells the bucket's URL.
        let get = self
            .client
            .get_object()
            .bucket(conditions.bucket)
            .key(conditions.key)
            .presigned(self.presigning()?)
            .await
            .map_err(|e| classify(e, conditions.bucket, conditions.key))?;
        let url = post_policy::bucket_url(get.uri(), conditions.key);
        let identity = post_policy::SigningIdentity {
            access_key_id: credentials.access_key_id(),
            secret_access_key: credentials.secret_access_key(),
            session_token: credentials.session_token(),
            region: &region,
        };
        Ok(post_policy::sign(
            url,
            conditions,
            &identity,
            std::time::SystemTime::now(),
        ))
    }
}

/// Maps SDK failures to our error kinds: a missing object or bucket is permanent, access
/// denied is permanent (a deployment problem), everything network- or 5xx-shaped is transient.
fn classify<E>(err: SdkError<E, aws_sdk_s3::config::http::HttpResponse>, bucket: &str, key: &str) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let missing = || Error::ObjectMissing {
        bucket: bucket.to_string(),
        key: key.to_string(),
    };
    match &err {
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or("");
            let message = service.err().message().unwrap_or("");
            let status = service.raw().status().as_u16();
            match code {
                _ if status == 404 => missing(),
                _ if status == 403 => Error::ObjectAccess(format!("s3://{bucket}/{key}: {code}")),
                "NoSuchKey" | "NotFound" | "NoSuchBucket" => missing(),
                "AccessDenied" | "Forbidden" | "InvalidAccessKeyId" | "SignatureDoesNotMatch" => {
                    Error::ObjectAccess(format!("s3://{bucket}/{key}: {code}"))
                }
                "SlowDown" | "ServiceUnavailable" | "InternalError" | "RequestTimeout" | "Throttling" => {
                    Error::ObjectStoreUnavailable(format!("s3://{bucket}/{key}: {code} {message}"))
                }
                _ => Error::ObjectStoreUnavailable(format!("s3://{bucket}/{key}: {code} {message}")),
            }
        }
        SdkError::ResponseError(_) | SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
            Error::ObjectStoreUnavailable(format!("s3://{bucket}/{key}: {err}"))
        }
        _ => Error::ObjectStoreUnavailable(format!("s3://{bucket}/{key}: {err}")),
    }
}
