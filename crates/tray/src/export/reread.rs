//! `migrate --cutover` at Tray as the source: one exported auth read again, and deleted.
//!
//! The re-read is the export's own reads for one owner (users by `externalUserId`, the user's
//! `viewer.authentications`, then Get full authentication of the one auth), so the record is
//! built exactly as the export built it. Get full authentication is sent without
//! `forceRefresh`: Tray refreshes nothing because of it. Retiring the source is `DELETE
//! /core/v1/authentications/{id}` with the master token (as the importer's `remove`).

use authport_core::{
    CredentialRecord, ProviderError, ReadRetry, Removal, SourceObject, retry_read,
};
use authport_kit::{Effect, Method};

use super::{TrayExporter, to_record};
use crate::client::{Resource, RestCall, master_failure};

impl TrayExporter {
    pub(super) async fn reread_one(
        &self,
        object: &SourceObject,
        reads: &dyn ReadRetry,
    ) -> Result<Option<CredentialRecord>, ProviderError> {
        for user in self.users_of(reads, &object.owner_id).await? {
            let owner = user.owner();
            let user_ref = user.user_ref(&owner);
            let listed = self.list_auths(user_ref, reads).await?;
            let Some(auth) = listed
                .viewer
                .authentications
                .into_nodes()
                .into_iter()
                .find(|auth| auth.id == object.id)
            else {
                continue;
            };
            let full = self.full_auth(user_ref, &auth.id, reads).await?;
            return to_record(&owner, &auth, full).map(Some);
        }
        Ok(None)
    }

    pub(super) async fn retire_one(
        &self,
        object: &SourceObject,
        reads: &dyn ReadRetry,
    ) -> Result<Removal, ProviderError> {
        let call = RestCall {
            method: &Method::DELETE,
            resource: Resource::Authentication(&object.id),
            body: None,
            effect: Effect::IdempotentWrite,
            operation: "delete authentication",
            secrets: &[],
        };
        retry_read(reads, || async {
            match self.client.rest(self.client.master(), call).await {
                Ok(_) => Ok(Removal::Removed),
                Err(failure) if failure.is_not_found() => Ok(Removal::AlreadyGone),
                Err(failure) => Err(master_failure(failure)),
            }
        })
        .await
    }
}
