//! IAM administration: the roles and inline policies that give tenants' data access.

use async_trait::async_trait;
use aws_sdk_iam::Client;
use aws_sdk_iam::config::Region;

use crate::storage::StorageError;

/// The inline policy name every data role carries.
pub const POLICY_NAME: &str = "lakeplane-data-access";

/// Creates and removes data roles.
#[async_trait]
pub trait IamAdmin: Send + Sync + 'static {
    /// Creates the role if absent (and then makes its trust policy the given one); true when created.
    async fn ensure_role(
        &self,
        name: &str,
        trust: &serde_json::Value,
        boundary: Option<&str>,
    ) -> Result<bool, StorageError>;
    /// Sets the role's inline data policy (overwriting is idempotent).
    async fn put_policy(&self, role: &str, policy: &serde_json::Value) -> Result<(), StorageError>;
    /// Removes the role and its inline policy; absent roles are fine.
    async fn delete_role(&self, name: &str) -> Result<(), StorageError>;
}

/// IAM over the AWS API (or moto).
#[derive(Debug, Clone)]
pub struct AwsIam {
    client: Client,
}

fn iam_error<E: std::error::Error + Send + Sync + 'static>(
    operation: &'static str,
    target: &str,
    error: E,
) -> StorageError {
    StorageError::Io {
        operation,
        target: target.to_owned(),
        source: std::io::Error::other(tenancy::error_chain(&error)),
    }
}

/// The standard AWS configuration chain for a region, with an optional endpoint override
/// (moto, MinIO, a VPC endpoint): what every AWS client of the plane is built from.
pub async fn sdk_config(region: &str, endpoint: Option<&str>) -> aws_config::SdkConfig {
    let mut loader = aws_config::from_env().region(Region::new(region.to_owned()));
    if let Some(endpoint) = endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    loader.load().await
}

impl AwsIam {
    /// Builds a client from the standard AWS configuration chain.
    pub async fn connect(region: &str, endpoint: Option<&str>) -> Self {
        Self {
            client: Client::new(&sdk_config(region, endpoint).await),
        }
    }

    /// The SDK client, for tests that inspect roles.
    pub fn client(&self) -> &Client {
        &self.client
    }
}

#[async_trait]
impl IamAdmin for AwsIam {
    async fn ensure_role(
        &self,
        name: &str,
        trust: &serde_json::Value,
        boundary: Option<&str>,
    ) -> Result<bool, StorageError> {
        let document = trust.to_string();
        let mut create = self
            .client
            .create_role()
            .role_name(name)
            .assume_role_policy_document(&document)
            .description("Lakeplane tenant data access");
        if let Some(boundary) = boundary {
            create = create.permissions_boundary(boundary);
        }
        match create.send().await {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_entity_already_exists_exception()) =>
            {
                // The role survived an earlier, interrupted run: converge its trust policy.
                self.client
                    .update_assume_role_policy()
                    .role_name(name)
                    .policy_document(&document)
                    .send()
                    .await
                    .map_err(|e| iam_error("update trust policy", name, e))?;
                Ok(false)
            }
            Err(e) => Err(iam_error("create role", name, e)),
        }
    }

    async fn put_policy(&self, role: &str, policy: &serde_json::Value) -> Result<(), StorageError> {
        self.client
            .put_role_policy()
            .role_name(role)
            .policy_name(POLICY_NAME)
            .policy_document(policy.to_string())
            .send()
            .await
            .map_err(|e| iam_error("put role policy", role, e))?;
        Ok(())
    }

    async fn delete_role(&self, name: &str) -> Result<(), StorageError> {
        match self
            .client
            .delete_role_policy()
            .role_name(name)
            .policy_name(POLICY_NAME)
            .send()
            .await
        {
            Ok(_) => {}
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => {}
            Err(e) => return Err(iam_error("delete role policy", name, e)),
        }
        match self.client.delete_role().role_name(name).send().await {
            Ok(_) => Ok(()),
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => Ok(()),
            Err(e) => Err(iam_error("delete role", name, e)),
        }
    }
}
