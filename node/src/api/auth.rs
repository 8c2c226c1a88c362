//! The bearer token of the local API.

use std::path::Path;
use std::sync::Arc;

use tonic::service::Interceptor;
use tonic::{Request, Status};

use crate::error::{Error, Result};

/// The token the back office must send as `authorization: Bearer <token>`.
#[derive(Clone)]
pub struct BearerToken(Arc<String>);

impl BearerToken {
    /// Reads the token file that `handbereik init` wrote (mode 0600).
    pub fn load(path: &Path) -> Result<Self> {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path).map_err(|e| {
            Error::InvalidRequest(format!(
                "cannot read the API token file {}: {e}",
                path.display()
            ))
        })?;
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(Error::InvalidRequest(format!(
                "the API token file {} is readable by group or others; run `chmod 600 {}`",
                path.display(),
                path.display()
            )));
        }
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::InvalidRequest(format!(
                "cannot read the API token file {}: {e}",
                path.display()
            ))
        })?;
        let token = text.trim();
        if token.len() < 32 {
            return Err(Error::InvalidRequest(format!(
                "the API token in {} is shorter than 32 characters; `handbereik init` writes a good one",
                path.display()
            )));
        }
        Ok(BearerToken(Arc::new(format!("Bearer {token}"))))
    }
}

impl Interceptor for BearerToken {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let given = request
            .metadata()
            .get("authorization")
            .map(|v| v.as_bytes())
            .unwrap_or_default();
        if constant_time_eq(given, self.0.as_bytes()) {
            Ok(request)
        } else {
            Err(Status::unauthenticated(
                "missing or wrong bearer token: send `authorization: Bearer <token>` with the token from the node's api-token file",
            ))
        }
    }
}

/// Compares without stopping at the first difference, so timing tells nothing.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
