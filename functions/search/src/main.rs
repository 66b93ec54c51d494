//! The search Lambda: built once per cold start (model towers, S3 client, Milvus connection),
//! then every request is routed by [`search::App::handle`].

use std::convert::Infallible;
use std::sync::Arc;

use lambda_http::{service_fn, Request};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    search::init_tracing();
    let app = Arc::new(search::from_env().await?);
    lambda_http::run(service_fn(move |request: Request| {
        let app = Arc::clone(&app);
        async move { Ok::<_, Infallible>(app.handle(request).await) }
    }))
    .await
}
