//! The lake in an S3 bucket. Single PUTs are atomic in S3 (an object is
//! whole or absent), which the exactly-once recovery relies on; large
//! objects go up in parts and only appear when the upload is completed, so
//! the same holds for them, and an interrupted upload is aborted on recovery.

use std::sync::Arc;

use aws_sdk_s3::primitives::{ByteStream, SdkBody};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, ServerSideEncryption};
use aws_sdk_s3::Client;

use super::ObjectStore;
use crate::aws::{describe, Aws};
use crate::config::{S3Config, Sse};
use crate::error::{Error, Result};

pub struct S3Store {
    aws: Arc<Aws>,
    client: Client,
    bucket: String,
    sse: Sse,
    kms_key_id: Option<String>,
    multipart_threshold: usize,
    part_size: usize,
}

/// A write that must not overwrite what another writer put meanwhile.
#[derive(Debug, Clone)]
pub enum Precondition {
    /// Only if the key does not exist yet (`If-None-Match: *`).
    Absent,
    /// Only if the object still has this ETag (`If-Match`).
    Matches(String),
}

/// How a conditional write went.
#[derive(Debug)]
pub enum Conditional {
    /// Written; the new ETag.
    Written(String),
    /// Someone else wrote the key since we read it.
    Lost,
}

impl S3Store {
    pub fn new(aws: Arc<Aws>, cfg: &S3Config) -> S3Store {
        let conf = aws_sdk_s3::config::Builder::from(&aws.sdk)
            .force_path_style(cfg.force_path_style)
            .build();
        S3Store {
            client: Client::from_conf(conf),
            aws,
            bucket: cfg.bucket.clone(),
            sse: cfg.sse,
            kms_key_id: cfg.sse_kms_key_id.clone(),
            multipart_threshold: (cfg.multipart_threshold_mib.max(5) * 1024 * 1024) as usize,
            part_size: (cfg.part_size_mib.max(5) * 1024 * 1024) as usize,
        }
    }

    /// Fail at start, with the bucket named, rather than at the first flush.
    pub fn check_bucket(&self) -> Result<()> {
        self.aws
            .block_on(self.client.head_bucket().bucket(&self.bucket).send())
            .map(|_| ())
            .map_err(|e| self.fail("", &describe(&e)))
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    fn fail(&self, key: &str, message: &str) -> Error {
        Error::sink(format!("s3://{}/{key}", self.bucket), message)
    }

    fn sse_value(&self) -> Option<ServerSideEncryption> {
        match self.sse {
            Sse::None => None,
            Sse::Aes256 => Some(ServerSideEncryption::Aes256),
            Sse::AwsKms => Some(ServerSideEncryption::AwsKms),
        }
    }

    fn body(bytes: &[u8]) -> ByteStream {
        ByteStream::new(SdkBody::from(bytes.to_vec()))
    }

    /// A single PUT with the configured encryption.
    fn put_request(
        &self,
        key: &str,
        bytes: &[u8],
    ) -> aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(Self::body(bytes))
            .set_server_side_encryption(self.sse_value())
            .set_ssekms_key_id(self.kms_key_id.clone())
    }

    /// The object and its ETag, if it exists.
    pub fn get_with_etag(&self, key: &str) -> Result<Option<(Vec<u8>, String)>> {
        self.aws.block_on(async {
            let out = match self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(key)
                .send()
                .await
            {
                Ok(o) => o,
                Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => {
                    return Ok(None)
                }
                Err(e) => return Err(self.fail(key, &describe(&e))),
            };
            let etag = out.e_tag().unwrap_or_default().to_owned();
            let bytes = out
                .body
                .collect()
                .await
                .map_err(|e| self.fail(key, &format!("reading the body: {e}")))?;
            Ok(Some((bytes.to_vec(), etag)))
        })
    }

    /// A PUT that only happens if `pre` holds; two writers racing on one
    /// key cannot both win.
    pub fn put_if(&self, key: &str, bytes: &[u8], pre: &Precondition) -> Result<Conditional> {
        let req = match pre {
            Precondition::Absent => self.put_request(key, bytes).if_none_match("*"),
            Precondition::Matches(etag) => self.put_request(key, bytes).if_match(etag),
        };
        match self.aws.block_on(req.send()) {
            Ok(o) => Ok(Conditional::Written(
                o.e_tag().unwrap_or_default().to_owned(),
            )),
            Err(e) => {
                let status = e.raw_response().map(|r| r.status().as_u16());
                // 412: the precondition failed; 409: a concurrent conditional
                // write to the same key is in flight. Either way we lost.
                if matches!(status, Some(412) | Some(409)) {
                    // An attempt that timed out may have landed and made its
                    // retry fail the precondition: then the object is ours.
                    match self.get_with_etag(key)? {
                        Some((body, etag)) if body == bytes => Ok(Conditional::Written(etag)),
                        _ => Ok(Conditional::Lost),
                    }
                } else {
                    Err(self.fail(key, &describe(&e)))
                }
            }
        }
    }

    async fn put_multipart(&self, key: &str, bytes: &[u8]) -> Result<()> {
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .set_server_side_encryption(self.sse_value())
            .set_ssekms_key_id(self.kms_key_id.clone())
            .send()
            .await
            .map_err(|e| self.fail(key, &describe(&e)))?;
        let upload_id = created
            .upload_id()
            .ok_or_else(|| self.fail(key, "CreateMultipartUpload returned no upload id"))?
            .to_owned();
        let result = async {
            let mut parts = Vec::new();
            for (i, chunk) in bytes.chunks(self.part_size).enumerate() {
                let n = i as i32 + 1;
                let out = self
                    .client
                    .upload_part()
                    .bucket(&self.bucket)
                    .key(key)
                    .upload_id(&upload_id)
                    .part_number(n)
                    .body(Self::body(chunk))
                    .send()
                    .await
                    .map_err(|e| self.fail(key, &format!("part {n}: {}", describe(&e))))?;
                parts.push(
                    CompletedPart::builder()
                        .part_number(n)
                        .set_e_tag(out.e_tag().map(str::to_owned))
                        .build(),
                );
            }
            self.client
                .complete_multipart_upload()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(&upload_id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                )
                .send()
                .await
                .map_err(|e| self.fail(key, &describe(&e)))?;
            Ok(())
        }
        .await;
        if result.is_err() {
            // Parts of an abandoned upload are billed until aborted.
            let _ = self
                .client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(&upload_id)
                .send()
                .await;
        }
        result
    }
}

impl ObjectStore for S3Store {
    fn put(&self, key: &str, bytes: &[u8]) -> Result<()> {
        if bytes.len() >= self.multipart_threshold {
            return self.aws.block_on(self.put_multipart(key, bytes));
        }
        self.aws
            .block_on(self.put_request(key, bytes).send())
            .map(|_| ())
            .map_err(|e| self.fail(key, &describe(&e)))
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.get_with_etag(key)?.map(|(b, _)| b))
    }

    fn exists(&self, key: &str) -> Result<bool> {
        let req = self.client.head_object().bucket(&self.bucket).key(key);
        match self.aws.block_on(req.send()) {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(false),
            Err(e) => Err(self.fail(key, &describe(&e))),
        }
    }

    fn list(&self, prefix: &str) -> Result<Vec<String>> {
        self.aws.block_on(async {
            let mut keys = Vec::new();
            let mut pages = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| self.fail(prefix, &describe(&e)))?;
                keys.extend(
                    page.contents()
                        .iter()
                        .filter_map(|o| o.key().map(str::to_owned)),
                );
            }
            keys.sort();
            Ok(keys)
        })
    }

    fn url(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }

    fn delete(&self, key: &str) -> Result<()> {
        let req = self.client.delete_object().bucket(&self.bucket).key(key);
        self.aws
            .block_on(req.send())
            .map(|_| ())
            .map_err(|e| self.fail(key, &describe(&e)))
    }

    fn discard_partial(&self, key: &str) -> Result<()> {
        self.aws.block_on(async {
            let out = self
                .client
                .list_multipart_uploads()
                .bucket(&self.bucket)
                .prefix(key)
                .send()
                .await
                .map_err(|e| self.fail(key, &describe(&e)))?;
            for u in out.uploads() {
                if u.key() == Some(key) {
                    if let Some(id) = u.upload_id() {
                        self.client
                            .abort_multipart_upload()
                            .bucket(&self.bucket)
                            .key(key)
                            .upload_id(id)
                            .send()
                            .await
                            .map_err(|e| self.fail(key, &describe(&e)))?;
                    }
                }
            }
            Ok(())
        })
    }
}
