//! The AWS side shared by the S3 sink, the Glue catalog, the S3 checkpoint
//! store and the Kinesis source: one SDK configuration and one small tokio
//! runtime.
//!
//! The pipeline itself is synchronous (rayon for CPU work, threads for the
//! source); AWS calls are async. The stores block on this runtime, which is
//! never driven from its own worker threads, so `block_on` is safe.

use std::future::Future;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};

use crate::config::AwsConfig;
use crate::error::{Error, Result};

/// Default attempts per call: generous, because a lost flush costs a
/// re-read, and the SDK backs off exponentially with jitter between tries.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 10;

pub struct Aws {
    rt: tokio::runtime::Runtime,
    pub sdk: SdkConfig,
}

impl Aws {
    /// Load region, credentials and endpoints from the standard chain,
    /// overridden by the config file's `[aws]` section.
    pub fn load(cfg: &AwsConfig) -> Result<Aws> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("lakehose-aws")
            .enable_all()
            .build()
            .map_err(|e| Error::Aws(format!("starting the async runtime: {e}")))?;
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(cfg.max_attempts.unwrap_or(DEFAULT_MAX_ATTEMPTS).max(1))
                    .with_initial_backoff(Duration::from_millis(100))
                    .with_max_backoff(Duration::from_secs(10)),
            )
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_attempt_timeout(Duration::from_secs(120))
                    .build(),
            );
        if let Some(r) = &cfg.region {
            loader = loader.region(Region::new(r.clone()));
        }
        if let Some(u) = &cfg.endpoint_url {
            loader = loader.endpoint_url(u.clone());
        }
        let sdk = rt.block_on(loader.load());
        if sdk.region().is_none() {
            return Err(Error::Aws(
                "no AWS region: set AWS_REGION or aws.region in the config".into(),
            ));
        }
        Ok(Aws { rt, sdk })
    }

    /// Run a future to completion from synchronous code.
    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    pub fn handle(&self) -> tokio::runtime::Handle {
        self.rt.handle().clone()
    }
}

/// One line for an SDK error of any service: its code and message, or the
/// cause chain of a transport failure; never the request (signed headers).
pub fn describe<E, R>(e: &aws_sdk_s3::error::SdkError<E, R>) -> String
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    use aws_sdk_s3::error::SdkError;
    match e {
        SdkError::ServiceError(s) => {
            let err = s.err();
            match (err.code(), err.message()) {
                (Some(c), Some(m)) => format!("{c}: {m}"),
                (Some(c), None) => c.to_owned(),
                _ => err.to_string(),
            }
        }
        other => aws_sdk_s3::error::DisplayErrorContext(other).to_string(),
    }
}
