mod common;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_up_create_org_and_read_it_back() {
    let s = common::Server::start().await;
    let (token, user) = s.sign_up("ada@example.com", "Ada").await;
    let org = s.create_org(&token, "Analytical Engines").await;
    let d = s
        .ok(
            Some(&token),
            "query($id: ID!) { viewer { id email memberships { organization { id name } roles { id } } }
               organization(id: $id) { name viewerCanAccessConsole overview { seats { used total } creditBalance }
                 members(first: 10) { totalCount edges { node { alias email roles { name } } } }
                 subscription { plan seats status } } }",
            json!({ "id": org }),
        )
        .await;
    assert_eq!(d["viewer"]["id"], json!(user));
    assert_eq!(d["organization"]["name"], json!("Analytical Engines"));
    assert_eq!(d["organization"]["members"]["totalCount"], json!(1));
    assert_eq!(d["organization"]["subscription"]["plan"], json!("free"));
    assert_eq!(d["organization"]["viewerCanAccessConsole"], json!(true));
}
