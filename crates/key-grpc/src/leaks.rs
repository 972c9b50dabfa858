//! ReportLeakedKeys: a secret-scanning report's raw body and signature headers, handed whole
//! to `LeakReports::report`, which verifies and acts. Public: the signature is the credential.

use key_core::Error;
use key_proto::v1;
use key_service::Application;
use tonic::Request;

use crate::auth::context_of;

pub(crate) async fn report_leaked_keys(
    app: &Application,
    request: Request<v1::ReportLeakedKeysRequest>,
) -> Result<v1::ReportLeakedKeysResponse, Error> {
    let context = context_of(&request);
    let request = request.get_ref();
    let verdicts = app
        .leaks
        .report(
            &request.payload,
            &request.key_identifier,
            &request.signature,
            &context,
        )
        .await?;
    Ok(v1::ReportLeakedKeysResponse {
        verdicts: verdicts
            .into_iter()
            .map(|verdict| v1::LeakedKeyVerdict {
                token_hash: verdict.token_hash,
                token_type: verdict.token_type,
                true_positive: verdict.true_positive,
            })
            .collect(),
    })
}
