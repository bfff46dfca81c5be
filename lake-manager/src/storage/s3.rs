//! The S3 backend (AWS S3, MinIO, Ceph, Garage, moto) for bucket administration.

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::Region;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{BuildError, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, BucketLocationConstraint, ChecksumMode,
    ChecksumType, CompletedMultipartUpload, CompletedPart, CreateBucketConfiguration, Delete,
    ExpirationStatus, LifecycleRule, LifecycleRuleAndOperator, LifecycleRuleFilter,
    NoncurrentVersionExpiration, ObjectIdentifier, ObjectOwnership, OwnershipControls, OwnershipControlsRule,
    PublicAccessBlockConfiguration, ServerSideEncryption, ServerSideEncryptionByDefault,
    ServerSideEncryptionConfiguration, ServerSideEncryptionRule, Tag, Tagging, Transition,
    TransitionStorageClass,
};
use serde::{Deserialize, Serialize};
use tenancy::zone::{MIN_TIERED_OBJECT_BYTES, StorageClass};

use super::{ClassUsage, ObjectStorageAdmin, StorageError, StorageKind};
use crate::lifecycle::{
    AbortIncomplete, Filter, LifecycleDocument, NoncurrentExpiration, Rule, RuleTransition,
};

/// Connection settings, from `storage.s3.*`. Credentials come from the standard AWS chain.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct S3Settings {
    /// Custom endpoint (MinIO, moto); `None` for AWS.
    pub endpoint: Option<String>,
    /// Region.
    pub region: String,
    /// Path-style addressing.
    pub path_style: bool,
    /// A KMS key for default encryption; SSE-S3 (AES256) when absent.
    pub kms_key_id: Option<String>,
    /// When server-side copies switch to multipart, and the part size.
    #[serde(default)]
    pub copy: CopySettings,
}

/// S3 refuses a single `CopyObject` above 5 GiB; larger objects are copied in parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CopySettings {
    /// Objects larger than this are copied with `UploadPartCopy`.
    pub multipart_threshold: u64,
    /// Preferred part size; raised when the object would need more than 10,000 parts.
    pub part_size: u64,
}

/// The largest single `CopyObject` S3 accepts.
pub const MAX_SINGLE_COPY_BYTES: u64 = 5 * 1024 * 1024 * 1024;
const MIN_PART_BYTES: u64 = 5 * 1024 * 1024;
const MAX_PARTS: u64 = 10_000;

impl Default for CopySettings {
    fn default() -> Self {
        Self {
            multipart_threshold: MAX_SINGLE_COPY_BYTES,
            part_size: 512 * 1024 * 1024,
        }
    }
}

impl CopySettings {
    /// Why these settings are outside S3's limits, naming the field, if they are.
    pub fn problem(&self) -> Option<(&'static str, String)> {
        if !(MIN_PART_BYTES..=MAX_SINGLE_COPY_BYTES).contains(&self.part_size) {
            return Some((
                "part_size",
                format!("must be between {MIN_PART_BYTES} (5 MiB) and {MAX_SINGLE_COPY_BYTES} (5 GiB)"),
            ));
        }
        if !(1..=MAX_SINGLE_COPY_BYTES).contains(&self.multipart_threshold) {
            return Some((
                "multipart_threshold",
                format!("must be between 1 and {MAX_SINGLE_COPY_BYTES} (5 GiB, the largest single copy)"),
            ));
        }
        None
    }

    /// Byte ranges (inclusive) of each part for an object of `size` bytes, within S3's limits
    /// (5 MiB to 5 GiB per part, except the last; at most 10,000 parts).
    pub fn part_ranges(&self, size: u64) -> Vec<(u64, u64)> {
        let needed = size.div_ceil(MAX_PARTS);
        let part = self
            .part_size
            .max(needed)
            .clamp(MIN_PART_BYTES, MAX_SINGLE_COPY_BYTES);
        let mut ranges = Vec::new();
        let mut start = 0;
        while start < size {
            let end = (start + part).min(size) - 1;
            ranges.push((start, end));
            start = end + 1;
        }
        ranges
    }
}

/// The ETag S3 gives a multipart object: MD5 of the parts' binary MD5s, then `-<parts>`.
pub fn multipart_etag(part_etags: &[String]) -> Option<String> {
    use md5::Digest;
    let mut digest = md5::Md5::new();
    for etag in part_etags {
        let hex = etag.trim_matches('"');
        if hex.len() != 32 {
            return None;
        }
        for i in (0..32).step_by(2) {
            digest.update([u8::from_str_radix(&hex[i..i + 2], 16).ok()?]);
        }
    }
    Some(format!("\"{:x}-{}\"", digest.finalize(), part_etags.len()))
}

/// Bucket administration over the S3 API.
#[derive(Debug, Clone)]
pub struct S3Storage {
    client: Client,
    settings: S3Settings,
}

fn s3_error<E: std::error::Error + Transient + Send + Sync + 'static>(
    operation: &'static str,
    target: &str,
    error: E,
) -> StorageError {
    let transient = error.transient();
    let source = std::io::Error::other(tenancy::error_chain(&error));
    let target = target.to_owned();
    if transient {
        StorageError::Unavailable {
            operation,
            target,
            source,
        }
    } else {
        StorageError::Io {
            operation,
            target,
            source,
        }
    }
}

/// Whether a failure means S3 is away or overloaded (retry later) rather than that the
/// request is wrong: the storage error's class is decided here, where the SDK's error is known.
trait Transient {
    fn transient(&self) -> bool;
}

impl<E: ProvideErrorMetadata> Transient for SdkError<E, HttpResponse> {
    fn transient(&self) -> bool {
        match self {
            // Never reached S3, timed out, or got an unreadable answer.
            SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => true,
            // InternalError, a failing gateway, ServiceUnavailable and SlowDown, and request
            // timeouts; not 501, which no retry mends.
            SdkError::ServiceError(e) => {
                matches!(e.raw().status().as_u16(), 500 | 502 | 503 | 504)
                    || matches!(e.err().code(), Some("SlowDown" | "RequestTimeout"))
            }
            _ => false,
        }
    }
}

/// Requests the plane built wrongly: never the storage's fault.
impl Transient for BuildError {
    fn transient(&self) -> bool {
        false
    }
}

impl Transient for aws_sdk_s3::presigning::PresigningConfigError {
    fn transient(&self) -> bool {
        false
    }
}

/// A body that stopped arriving: the connection, not the request, failed.
impl Transient for aws_sdk_s3::primitives::ByteStreamError {
    fn transient(&self) -> bool {
        true
    }
}

/// What S3 answered, found wrong by the plane (a mismatched ETag).
impl Transient for std::io::Error {
    fn transient(&self) -> bool {
        false
    }
}

fn class_name(class: StorageClass) -> TransitionStorageClass {
    TransitionStorageClass::from(class.as_str())
}

fn class_from(name: &str) -> StorageClass {
    match name {
        "STANDARD_IA" => StorageClass::StandardIa,
        "INTELLIGENT_TIERING" => StorageClass::IntelligentTiering,
        "GLACIER_IR" => StorageClass::GlacierIr,
        "GLACIER" => StorageClass::Glacier,
        "DEEP_ARCHIVE" => StorageClass::DeepArchive,
        _ => StorageClass::Standard,
    }
}

impl S3Storage {
    /// Builds a client from the standard AWS configuration chain plus these settings.
    pub async fn connect(settings: S3Settings) -> Self {
        let mut loader = aws_config::from_env().region(Region::new(settings.region.clone()));
        if let Some(endpoint) = &settings.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        let shared = loader.load().await;
        let config = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(settings.path_style)
            .build();
        Self {
            client: Client::from_conf(config),
            settings,
        }
    }

    /// The SDK client, for tests that inspect buckets directly.
    pub fn client(&self) -> &Client {
        &self.client
    }

    fn to_sdk(document: &LifecycleDocument) -> Result<BucketLifecycleConfiguration, StorageError> {
        let mut rules = Vec::new();
        for rule in &document.rules {
            let filter = match rule.filter.object_size_greater_than {
                Some(size) => LifecycleRuleFilter::builder()
                    .and(
                        LifecycleRuleAndOperator::builder()
                            .prefix(&rule.filter.prefix)
                            .object_size_greater_than(i64::try_from(size).unwrap_or(i64::MAX))
                            .build(),
                    )
                    .build(),
                None => LifecycleRuleFilter::builder().prefix(&rule.filter.prefix).build(),
            };
            let mut builder = LifecycleRule::builder()
                .id(&rule.id)
                .status(ExpirationStatus::Enabled)
                .filter(filter);
            for t in &rule.transitions {
                builder = builder.transitions(
                    Transition::builder()
                        .days(i32::try_from(t.days).unwrap_or(i32::MAX))
                        .storage_class(class_name(t.storage_class))
                        .build(),
                );
            }
            if let Some(abort) = rule.abort_incomplete_multipart_upload {
                builder = builder.abort_incomplete_multipart_upload(
                    AbortIncompleteMultipartUpload::builder()
                        .days_after_initiation(i32::try_from(abort.days_after_initiation).unwrap_or(i32::MAX))
                        .build(),
                );
            }
            if let Some(noncurrent) = rule.noncurrent_version_expiration {
                builder = builder.noncurrent_version_expiration(
                    NoncurrentVersionExpiration::builder()
                        .noncurrent_days(i32::try_from(noncurrent.noncurrent_days).unwrap_or(i32::MAX))
                        .build(),
                );
            }
            rules.push(
                builder
                    .build()
                    .map_err(|e| s3_error("build lifecycle rule", &rule.id, e))?,
            );
        }
        BucketLifecycleConfiguration::builder()
            .set_rules(Some(rules))
            .build()
            .map_err(|e| s3_error("build lifecycle", "document", e))
    }

    /// Converts what the bucket reports back into the plane's document shape, so desired and
    /// applied compare field by field. Actions the plane never writes (such as Expiration)
    /// are kept visible by naming the rule, so drift shows them.
    fn from_sdk(rules: &[LifecycleRule]) -> LifecycleDocument {
        let rules = rules
            .iter()
            .map(|r| {
                let (prefix, size) = match r.filter() {
                    Some(f) => match f.and() {
                        Some(and) => (
                            and.prefix().unwrap_or_default().to_owned(),
                            and.object_size_greater_than(),
                        ),
                        None => (
                            f.prefix().unwrap_or_default().to_owned(),
                            f.object_size_greater_than(),
                        ),
                    },
                    // Older servers report the deprecated rule-level Prefix instead of a Filter.
                    #[allow(deprecated)]
                    None => (r.prefix().unwrap_or_default().to_owned(), None),
                };
                let mut id = r.id().unwrap_or_default().to_owned();
                if r.expiration().is_some() {
                    id.push_str(" (has Expiration)");
                }
                Rule {
                    id,
                    status: if r.status() == &ExpirationStatus::Enabled {
                        "Enabled"
                    } else {
                        "Disabled"
                    },
                    filter: Filter {
                        prefix,
                        object_size_greater_than: size.and_then(|s| u64::try_from(s).ok()),
                    },
                    transitions: r
                        .transitions()
                        .iter()
                        .map(|t| RuleTransition {
                            days: t.days().and_then(|d| u32::try_from(d).ok()).unwrap_or(0),
                            storage_class: class_from(
                                t.storage_class().map(|c| c.as_str()).unwrap_or_default(),
                            ),
                        })
                        .collect(),
                    abort_incomplete_multipart_upload: r.abort_incomplete_multipart_upload().map(|a| {
                        AbortIncomplete {
                            days_after_initiation: a
                                .days_after_initiation()
                                .and_then(|d| u32::try_from(d).ok())
                                .unwrap_or(0),
                        }
                    }),
                    noncurrent_version_expiration: r.noncurrent_version_expiration().map(|n| {
                        NoncurrentExpiration {
                            noncurrent_days: n
                                .noncurrent_days()
                                .and_then(|d| u32::try_from(d).ok())
                                .unwrap_or(0),
                        }
                    }),
                }
            })
            .collect();
        LifecycleDocument { rules }
    }

    /// Every current object under a prefix, across pages.
    async fn objects(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> Result<Vec<aws_sdk_s3::types::Object>, StorageError> {
        let mut objects = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(bucket)
                .prefix(prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| s3_error("list objects", bucket, e))?;
            objects.extend(page.contents().iter().cloned());
            match page.next_continuation_token() {
                Some(next) if page.is_truncated() == Some(true) => token = Some(next.to_owned()),
                _ => return Ok(objects),
            }
        }
    }

    /// Every object version and delete marker under a prefix, as delete identifiers.
    async fn versions(
        &self,
        bucket: &str,
        prefix: &str,
    ) -> Result<(Vec<ObjectIdentifier>, u64), StorageError> {
        let mut ids = Vec::new();
        let mut current = 0;
        let mut key_marker = None;
        let mut version_marker = None;
        loop {
            let page = self
                .client
                .list_object_versions()
                .bucket(bucket)
                .prefix(prefix)
                .set_key_marker(key_marker.take())
                .set_version_id_marker(version_marker.take())
                .send()
                .await
                .map_err(|e| s3_error("list versions", bucket, e))?;
            for v in page.versions() {
                if v.is_latest() == Some(true) {
                    current += 1;
                }
                let id = ObjectIdentifier::builder()
                    .key(v.key().unwrap_or_default())
                    .set_version_id(v.version_id().map(str::to_owned))
                    .build()
                    .map_err(|e| s3_error("build delete", bucket, e))?;
                ids.push(id);
            }
            for m in page.delete_markers() {
                let id = ObjectIdentifier::builder()
                    .key(m.key().unwrap_or_default())
                    .set_version_id(m.version_id().map(str::to_owned))
                    .build()
                    .map_err(|e| s3_error("build delete", bucket, e))?;
                ids.push(id);
            }
            if page.is_truncated() == Some(true) {
                key_marker = page.next_key_marker().map(str::to_owned);
                version_marker = page.next_version_id_marker().map(str::to_owned);
            } else {
                return Ok((ids, current));
            }
        }
    }
}

#[async_trait]
impl ObjectStorageAdmin for S3Storage {
    fn kind(&self) -> StorageKind {
        StorageKind::S3
    }

    fn root_uri(&self) -> String {
        match &self.settings.endpoint {
            Some(endpoint) => format!("s3:// (endpoint {endpoint})"),
            None => format!("s3:// (region {})", self.settings.region),
        }
    }

    fn bucket_uri(&self, bucket: &str) -> String {
        format!("s3://{bucket}")
    }

    async fn check_writable(&self) -> Result<(), StorageError> {
        // Listing proves the endpoint answers and the credentials are accepted.
        self.client
            .list_buckets()
            .send()
            .await
            .map_err(|e| s3_error("list buckets", "s3", e))?;
        Ok(())
    }

    async fn ensure_bucket(&self, bucket: &str) -> Result<bool, StorageError> {
        if self.client.head_bucket().bucket(bucket).send().await.is_ok() {
            return Ok(false);
        }
        let mut request = self.client.create_bucket().bucket(bucket);
        if self.settings.region != "us-east-1" {
            request = request.create_bucket_configuration(
                CreateBucketConfiguration::builder()
                    .location_constraint(BucketLocationConstraint::from(self.settings.region.as_str()))
                    .build(),
            );
        }
        match request.send().await {
            Ok(_) => Ok(true),
            Err(e) => match e.as_service_error() {
                Some(service) if service.is_bucket_already_owned_by_you() => Ok(false),
                _ => Err(s3_error("create bucket", bucket, e)),
            },
        }
    }

    async fn harden(&self, bucket: &str, tags: &[(String, String)]) -> Result<String, StorageError> {
        self.client
            .put_public_access_block()
            .bucket(bucket)
            .public_access_block_configuration(
                PublicAccessBlockConfiguration::builder()
                    .block_public_acls(true)
                    .ignore_public_acls(true)
                    .block_public_policy(true)
                    .restrict_public_buckets(true)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| s3_error("block public access", bucket, e))?;
        let default = match &self.settings.kms_key_id {
            Some(key) => ServerSideEncryptionByDefault::builder()
                .sse_algorithm(ServerSideEncryption::AwsKms)
                .kms_master_key_id(key),
            None => ServerSideEncryptionByDefault::builder().sse_algorithm(ServerSideEncryption::Aes256),
        }
        .build()
        .map_err(|e| s3_error("build encryption", bucket, e))?;
        let encryption = ServerSideEncryptionConfiguration::builder()
            .rules(
                ServerSideEncryptionRule::builder()
                    .apply_server_side_encryption_by_default(default)
                    .build(),
            )
            .build()
            .map_err(|e| s3_error("build encryption", bucket, e))?;
        self.client
            .put_bucket_encryption()
            .bucket(bucket)
            .server_side_encryption_configuration(encryption)
            .send()
            .await
            .map_err(|e| s3_error("set default encryption", bucket, e))?;
        let ownership = OwnershipControls::builder()
            .rules(
                OwnershipControlsRule::builder()
                    .object_ownership(ObjectOwnership::BucketOwnerEnforced)
                    .build()
                    .map_err(|e| s3_error("build ownership", bucket, e))?,
            )
            .build()
            .map_err(|e| s3_error("build ownership", bucket, e))?;
        self.client
            .put_bucket_ownership_controls()
            .bucket(bucket)
            .ownership_controls(ownership)
            .send()
            .await
            .map_err(|e| s3_error("set ownership controls", bucket, e))?;
        let mut tag_set = Vec::new();
        for (key, value) in tags {
            tag_set.push(
                Tag::builder()
                    .key(key)
                    .value(value)
                    .build()
                    .map_err(|e| s3_error("build tag", bucket, e))?,
            );
        }
        self.client
            .put_bucket_tagging()
            .bucket(bucket)
            .tagging(
                Tagging::builder()
                    .set_tag_set(Some(tag_set))
                    .build()
                    .map_err(|e| s3_error("build tags", bucket, e))?,
            )
            .send()
            .await
            .map_err(|e| s3_error("tag bucket", bucket, e))?;
        let encryption = if self.settings.kms_key_id.is_some() {
            "SSE-KMS"
        } else {
            "SSE-S3"
        };
        Ok(format!(
            "public access blocked, {encryption} default encryption, owner-enforced, {} tags",
            tags.len()
        ))
    }

    fn lifecycle_support(&self) -> Result<(), &'static str> {
        Ok(())
    }

    async fn put_lifecycle(&self, bucket: &str, document: &LifecycleDocument) -> Result<(), StorageError> {
        self.client
            .put_bucket_lifecycle_configuration()
            .bucket(bucket)
            .lifecycle_configuration(Self::to_sdk(document)?)
            .send()
            .await
            .map_err(|e| s3_error("put lifecycle", bucket, e))?;
        Ok(())
    }

    async fn get_lifecycle(&self, bucket: &str) -> Result<Option<serde_json::Value>, StorageError> {
        match self
            .client
            .get_bucket_lifecycle_configuration()
            .bucket(bucket)
            .send()
            .await
        {
            Ok(out) => Ok(serde_json::to_value(Self::from_sdk(out.rules())).ok()),
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => Ok(None),
            Err(e) => Err(s3_error("get lifecycle", bucket, e)),
        }
    }

    async fn ensure_prefix(&self, bucket: &str, prefix: &str) -> Result<(), StorageError> {
        self.client
            .put_object()
            .bucket(bucket)
            .key(prefix)
            .body(ByteStream::from_static(b""))
            .send()
            .await
            .map_err(|e| s3_error("create prefix", &format!("{bucket}/{prefix}"), e))?;
        Ok(())
    }

    async fn delete_prefix(&self, bucket: &str, prefix: &str) -> Result<u64, StorageError> {
        let (ids, current) = match self.versions(bucket, prefix).await {
            Ok(found) => found,
            Err(_) if self.client.head_bucket().bucket(bucket).send().await.is_err() => return Ok(0),
            Err(e) => return Err(e),
        };
        for chunk in ids.chunks(1000) {
            let delete = Delete::builder()
                .set_objects(Some(chunk.to_vec()))
                .quiet(true)
                .build()
                .map_err(|e| s3_error("build delete", bucket, e))?;
            let out = self
                .client
                .delete_objects()
                .bucket(bucket)
                .delete(delete)
                .send()
                .await
                .map_err(|e| s3_error("delete objects", bucket, e))?;
            if let Some(error) = out.errors().first() {
                return Err(StorageError::Io {
                    operation: "delete objects",
                    target: format!("{bucket}/{}", error.key().unwrap_or_default()),
                    source: std::io::Error::other(error.message().unwrap_or("unknown error").to_owned()),
                });
            }
        }
        Ok(current)
    }

    async fn delete_bucket(&self, bucket: &str) -> Result<u64, StorageError> {
        let removed = self.delete_prefix(bucket, "").await?;
        match self.client.delete_bucket().bucket(bucket).send().await {
            Ok(_) => Ok(removed),
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => Ok(removed),
            Err(e) => Err(s3_error("delete bucket", bucket, e)),
        }
    }

    async fn usage(&self, bucket: &str, prefix: &str) -> Result<Vec<ClassUsage>, StorageError> {
        let mut by_class: Vec<ClassUsage> = Vec::new();
        for object in self.objects(bucket, prefix).await? {
            let class = class_from(object.storage_class().map(|c| c.as_str()).unwrap_or("STANDARD"));
            let size = u64::try_from(object.size().unwrap_or(0)).unwrap_or(0);
            let index = match by_class.iter().position(|c| c.storage_class == class) {
                Some(index) => index,
                None => {
                    by_class.push(ClassUsage::empty(class));
                    by_class.len() - 1
                }
            };
            let entry = &mut by_class[index];
            entry.bytes += size;
            entry.objects += 1;
            if size < MIN_TIERED_OBJECT_BYTES {
                entry.small_objects += 1;
                entry.small_bytes += size;
            }
        }
        if by_class.is_empty() {
            by_class.push(ClassUsage::empty(StorageClass::Standard));
        }
        Ok(by_class)
    }

    async fn list_objects(&self, bucket: &str, prefix: &str) -> Result<Vec<super::ObjectInfo>, StorageError> {
        let mut out: Vec<super::ObjectInfo> = self
            .objects(bucket, prefix)
            .await?
            .iter()
            .map(|object| super::ObjectInfo {
                key: object.key().unwrap_or_default().to_owned(),
                size: u64::try_from(object.size().unwrap_or(0)).unwrap_or(0),
                fingerprint: object.e_tag().unwrap_or_default().to_owned(),
            })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn presigned_get(
        &self,
        bucket: &str,
        key: &str,
        expires_in: std::time::Duration,
    ) -> Result<Option<String>, StorageError> {
        let target = format!("{bucket}/{key}");
        let config = aws_sdk_s3::presigning::PresigningConfig::expires_in(expires_in)
            .map_err(|e| s3_error("presign", &target, e))?;
        let request = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .presigned(config)
            .await
            .map_err(|e| s3_error("presign", &target, e))?;
        Ok(Some(request.uri().to_owned()))
    }

    async fn content_digest(&self, bucket: &str, key: &str, stored: bool) -> Result<String, StorageError> {
        use sha2::Digest;
        let target = format!("{bucket}/{key}");
        if stored {
            let head = self
                .client
                .head_object()
                .bucket(bucket)
                .key(key)
                .checksum_mode(ChecksumMode::Enabled)
                .send()
                .await
                .map_err(|e| s3_error("head object", &target, e));
            match head {
                Ok(head) => {
                    // CRC64NVME exists only as a full-object checksum; a composite one (of
                    // parts) would compare part boundaries again.
                    let composite = head.checksum_type() == Some(&ChecksumType::Composite);
                    if let (Some(crc), false) = (head.checksum_crc64_nvme(), composite) {
                        return Ok(format!("crc64nvme:{crc}"));
                    }
                }
                // A store that refuses the checksum mode (400, 501) still serves the bytes.
                Err(StorageError::Io { .. }) => {}
                Err(unavailable) => return Err(unavailable),
            }
        }
        let mut body = self
            .client
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| s3_error("read object", &target, e))?
            .body;
        let mut hasher = sha2::Sha256::new();
        while let Some(chunk) = body
            .try_next()
            .await
            .map_err(|e| s3_error("read object", &target, e))?
        {
            hasher.update(&chunk);
        }
        Ok(format!("sha256:{:x}", hasher.finalize()))
    }

    async fn copy_object(
        &self,
        from_bucket: &str,
        object: &super::ObjectInfo,
        to_bucket: &str,
    ) -> Result<String, StorageError> {
        let key = &object.key;
        let target = format!("{from_bucket}/{key}");
        let source = format!("{from_bucket}/{}", percent_encode_key(key));
        if object.size <= self.settings.copy.multipart_threshold {
            let out = self
                .client
                .copy_object()
                .bucket(to_bucket)
                .key(key)
                .copy_source(source)
                .send()
                .await
                .map_err(|e| s3_error("copy object", &target, e))?;
            return Ok(out
                .copy_object_result()
                .and_then(|r| r.e_tag())
                .unwrap_or_default()
                .to_owned());
        }
        let upload = self
            .client
            .create_multipart_upload()
            .bucket(to_bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| s3_error("start multipart copy", &target, e))?;
        let upload_id = upload.upload_id().unwrap_or_default().to_owned();
        let copied = self.copy_parts(&source, object, to_bucket, &upload_id).await;
        let parts = match copied {
            Ok(parts) => parts,
            Err(e) => {
                // Leave no half-copied upload billing storage; the lifecycle rule is a backstop.
                let _ = self
                    .client
                    .abort_multipart_upload()
                    .bucket(to_bucket)
                    .key(key)
                    .upload_id(&upload_id)
                    .send()
                    .await;
                return Err(e);
            }
        };
        let etags: Vec<String> = parts
            .iter()
            .filter_map(|p| p.e_tag().map(str::to_owned))
            .collect();
        let completed = self
            .client
            .complete_multipart_upload()
            .bucket(to_bucket)
            .key(key)
            .upload_id(&upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .send()
            .await
            .map_err(|e| s3_error("complete multipart copy", &target, e))?;
        let reported = completed.e_tag().unwrap_or_default().to_owned();
        // Each part's ETag is the MD5 S3 computed over the copied range; the object's ETag
        // must be derived from exactly those, or a part went missing or was duplicated.
        if multipart_etag(&etags).as_deref() != Some(reported.as_str()) {
            return Err(s3_error(
                "verify multipart copy",
                &target,
                std::io::Error::other(format!("ETag {reported} does not match the copied parts")),
            ));
        }
        Ok(reported)
    }
}

impl S3Storage {
    async fn copy_parts(
        &self,
        source: &str,
        object: &super::ObjectInfo,
        to_bucket: &str,
        upload_id: &str,
    ) -> Result<Vec<CompletedPart>, StorageError> {
        let mut parts = Vec::new();
        for (number, (start, end)) in (1..).zip(self.settings.copy.part_ranges(object.size)) {
            let out = self
                .client
                .upload_part_copy()
                .bucket(to_bucket)
                .key(&object.key)
                .upload_id(upload_id)
                .part_number(number)
                .copy_source(source)
                .copy_source_range(format!("bytes={start}-{end}"))
                // The source must not change between parts.
                .copy_source_if_match(&object.fingerprint)
                .send()
                .await
                .map_err(|e| s3_error("copy part", &format!("{source} part {number}"), e))?;
            let etag = out.copy_part_result().and_then(|r| r.e_tag()).unwrap_or_default();
            parts.push(CompletedPart::builder().part_number(number).e_tag(etag).build());
        }
        Ok(parts)
    }
}

/// CopySource must be URL-encoded; keys here are `[a-z0-9_./=-]` plus Delta's part names.
fn percent_encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'/' | b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod copy_tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    fn settings(part_size: u64) -> CopySettings {
        CopySettings {
            multipart_threshold: MAX_SINGLE_COPY_BYTES,
            part_size,
        }
    }

    #[test]
    fn parts_cover_every_byte_once_within_s3_limits() {
        for size in [1, 5 * MIB, 12 * MIB, 5 * 1024 * MIB + 1, 6 * 1024 * 1024 * MIB] {
            for part_size in [5 * MIB, 512 * MIB] {
                let ranges = settings(part_size).part_ranges(size);
                assert_eq!(ranges[0].0, 0);
                assert_eq!(ranges.last().map(|r| r.1), Some(size - 1));
                assert!(ranges.windows(2).all(|w| w[1].0 == w[0].1 + 1), "contiguous");
                assert!(ranges.len() as u64 <= MAX_PARTS, "{size}: {} parts", ranges.len());
                let (last, rest) = ranges.split_last().expect("parts");
                for (start, end) in rest {
                    let len = end - start + 1;
                    assert!((MIN_PART_BYTES..=MAX_SINGLE_COPY_BYTES).contains(&len), "{len}");
                }
                assert!(last.1 - last.0 < MAX_SINGLE_COPY_BYTES);
            }
        }
        // 6 TiB would need 12,288 parts of 512 MiB: the part size grows instead.
        assert_eq!(
            settings(512 * MIB).part_ranges(6 * 1024 * 1024 * MIB).len(),
            10_000
        );
        assert_eq!(settings(5 * MIB).part_ranges(12 * MIB).len(), 3);
    }

    #[test]
    fn multipart_etag_is_md5_of_part_digests() {
        let parts = [
            "\"0cc175b9c0f1b6a831c399e269772661\"".to_owned(),
            "92eb5ffee6ae2fec3ad71c777531578f".to_owned(),
        ];
        assert_eq!(
            multipart_etag(&parts).as_deref(),
            Some("\"96e024ba2074fe77e8e965ba43a704be-2\"")
        );
        assert_eq!(multipart_etag(&["not-md5".to_owned()]), None);
    }

    #[test]
    fn copy_settings_outside_s3_limits_name_the_field() {
        assert_eq!(settings(MIB).problem().map(|p| p.0), Some("part_size"));
        let zero = CopySettings {
            multipart_threshold: 0,
            part_size: 5 * MIB,
        };
        assert_eq!(zero.problem().map(|p| p.0), Some("multipart_threshold"));
        assert_eq!(CopySettings::default().problem(), None);
    }
}
