//! Every mutation of the contract, over HTTP against a real server, each followed by a
//! query that must see its effect (read-your-writes).

mod common;
use serde_json::{Value, json};

fn s(v: &Value) -> String {
    v.as_str()
        .unwrap_or_else(|| panic!("not a string: {v}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mutation_works_and_is_seen_by_the_next_query() {
    let srv = common::Server::start().await;
    let (owner, owner_id) = srv.sign_up("owner@acme.test", "Olivia").await;
    let org = srv.create_org(&owner, "Acme Robotics").await;
    let q = |tok: &str, query: &str, vars: Value| {
        let tok = tok.to_owned();
        let query = query.to_owned();
        let srv = &srv;
        async move { srv.ok(Some(&tok), &query, vars).await }
    };

    // --- organization
    let d = q(&owner, "mutation($i: UpdateOrganizationProfileInput!) { updateOrganizationProfile(input: $i) { organization { profile { displayName tagline website } } position } }",
        json!({"i": {"organizationId": org, "displayName": "Acme", "tagline": "Bots that work", "website": "https://acme.test"}})).await;
    assert_eq!(
        d["updateOrganizationProfile"]["organization"]["profile"]["tagline"],
        json!("Bots that work")
    );
    let d = q(&owner, "mutation($i: UpdateSecurityPolicyInput!) { updateSecurityPolicy(input: $i) { organization { securityPolicy { sessionTtlMinutes minPasswordLength requireMfa } } } }",
        json!({"i": {"organizationId": org, "sessionTtlMinutes": 600, "minPasswordLength": 12}})).await;
    assert_eq!(
        d["updateSecurityPolicy"]["organization"]["securityPolicy"],
        json!({"sessionTtlMinutes": 600, "minPasswordLength": 12, "requireMfa": false})
    );

    // --- people
    let (bob, bob_id) = srv.sign_up("bob@acme.test", "Bob").await;
    let d = q(&owner, "mutation($i: InviteMemberInput!) { inviteMember(input: $i) { invitation { id email status kind invitedBy { id } roles { id } } position } }",
        json!({"i": {"organizationId": org, "email": "bob@acme.test", "roleIds": ["member"]}})).await;
    let inv = s(&d["inviteMember"]["invitation"]["id"]);
    assert_eq!(d["inviteMember"]["invitation"]["status"], json!("PENDING"));
    assert_eq!(
        d["inviteMember"]["invitation"]["invitedBy"]["id"],
        json!(owner_id)
    );
    let d = q(&owner, "mutation($i: InvitationIdInput!) { resendInvitation(input: $i) { invitation { id status expiresAt } } }", json!({"i": {"invitationId": inv}})).await;
    assert_eq!(
        d["resendInvitation"]["invitation"]["status"],
        json!("PENDING")
    );
    let d = q(&bob, "mutation($i: InvitationIdInput!) { acceptInvitation(input: $i) { organization { id viewerPermissions viewerCanAccessConsole } } }", json!({"i": {"invitationId": inv}})).await;
    assert_eq!(
        d["acceptInvitation"]["organization"]["viewerCanAccessConsole"],
        json!(false)
    );
    let d = q(
        &bob,
        "{ viewer { memberships { organization { id name } kind roles { id } } } }",
        json!({}),
    )
    .await;
    assert_eq!(
        d["viewer"]["memberships"][0]["organization"]["name"],
        json!("Acme Robotics")
    );
    let d = q(&owner, "query($o: ID!) { organization(id: $o) { members(first: 10) { totalCount edges { node { email kind } } } invitations(status: ACCEPTED) { id } } }", json!({"o": org})).await;
    assert_eq!(d["organization"]["members"]["totalCount"], json!(2));
    assert_eq!(
        d["organization"]["invitations"].as_array().map(Vec::len),
        Some(1)
    );
    // A second invitation, revoked.
    let d = q(&owner, "mutation($i: InviteMemberInput!) { inviteMember(input: $i) { invitation { id } } }",
        json!({"i": {"organizationId": org, "email": "carol@partner.test", "kind": "EXTERNAL_COLLABORATOR"}})).await;
    let inv2 = s(&d["inviteMember"]["invitation"]["id"]);
    let d = q(&owner, "mutation($i: InvitationIdInput!) { revokeInvitation(input: $i) { invitation { status kind } } }", json!({"i": {"invitationId": inv2}})).await;
    assert_eq!(
        d["revokeInvitation"]["invitation"],
        json!({"status": "REVOKED", "kind": "EXTERNAL_COLLABORATOR"})
    );

    // --- roles
    let d = q(&owner, "mutation($i: CreateRoleInput!) { createRole(input: $i) { role { id name builtIn permissions memberCount } position } }",
        json!({"i": {"organizationId": org, "name": "Auditor", "permissions": ["console:access", "audit:read"]}})).await;
    let role = s(&d["createRole"]["role"]["id"]);
    assert_eq!(d["createRole"]["role"]["builtIn"], json!(false));
    let d = q(&owner, "mutation($i: UpdateRoleInput!) { updateRole(input: $i) { role { name permissions } } }",
        json!({"i": {"organizationId": org, "roleId": role, "name": "Auditors", "permissions": ["console:access", "audit:read", "runs:read"]}})).await;
    assert_eq!(d["updateRole"]["role"]["name"], json!("Auditors"));
    let d = q(&owner, "mutation($i: GrantRoleInput!) { grantRole(input: $i) { organization { roles { id memberCount } } } }",
        json!({"i": {"organizationId": org, "userId": bob_id, "roleId": role}})).await;
    let roles = d["grantRole"]["organization"]["roles"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        roles
            .iter()
            .any(|r| r["id"] == json!(role) && r["memberCount"] == json!(1)),
        "{roles:?}"
    );
    let d = q(&bob, "query($o: ID!) { organization(id: $o) { viewerCanAccessConsole auditLog(first: 5) { edges { node { action } } } } }", json!({"o": org})).await;
    assert_eq!(d["organization"]["viewerCanAccessConsole"], json!(true));
    q(
        &owner,
        "mutation($i: GrantRoleInput!) { revokeRole(input: $i) { position } }",
        json!({"i": {"organizationId": org, "userId": bob_id, "roleId": role}}),
    )
    .await;
    assert_eq!(
        srv.code(
            Some(&bob),
            "query($o: ID!) { organization(id: $o) { auditLog(first: 5) { totalCount } } }",
            json!({"o": org})
        )
        .await,
        "FORBIDDEN"
    );
    let d = q(
        &owner,
        "mutation($i: RoleIdInput!) { deleteRole(input: $i) { ok position } }",
        json!({"i": {"organizationId": org, "roleId": role}}),
    )
    .await;
    assert_eq!(d["deleteRole"]["ok"], json!(true));

    // --- developer center
    q(
        &owner,
        "mutation($i: MemberInput!) { certifyDeveloper(input: $i) { position } }",
        json!({"i": {"organizationId": org, "userId": owner_id}}),
    )
    .await;
    let d = q(&owner, "mutation($i: CreateAppInput!) { createApp(input: $i) { app { id name kind published developer { id } } } }",
        json!({"i": {"organizationId": org, "name": "Invoice Reader", "kind": "COMMAND"}})).await;
    let app = s(&d["createApp"]["app"]["id"]);
    assert_eq!(d["createApp"]["app"]["developer"]["id"], json!(owner_id));
    let d = q(&owner, "mutation($i: PublishAppVersionInput!) { publishAppVersion(input: $i) { app { published versions { version notes visibility publishedAt } } } }",
        json!({"i": {"appId": app, "version": "1.0.0", "notes": "first", "visibility": "MARKETPLACE"}})).await;
    assert_eq!(d["publishAppVersion"]["app"]["published"], json!(true));
    assert_eq!(
        d["publishAppVersion"]["app"]["versions"][0]["visibility"],
        json!("MARKETPLACE")
    );
    let d = q(
        &owner,
        "mutation($i: AppIdInput!) { unpublishApp(input: $i) { app { published } } }",
        json!({"i": {"appId": app}}),
    )
    .await;
    assert_eq!(d["unpublishApp"]["app"]["published"], json!(false));

    // --- billing: a paid plan grants its credits
    let d = q(&owner, "mutation($i: AddPaymentMethodInput!) { addPaymentMethod(input: $i) { paymentMethod { id brand last4 expMonth expYear isDefault } } }",
        json!({"i": {"organizationId": org, "brand": "visa", "last4": "4242", "expMonth": 12, "expYear": 2030, "makeDefault": true}})).await;
    let card = s(&d["addPaymentMethod"]["paymentMethod"]["id"]);
    assert_eq!(
        d["addPaymentMethod"]["paymentMethod"]["isDefault"],
        json!(true)
    );
    let d = q(&owner, "mutation($i: AddPaymentMethodInput!) { addPaymentMethod(input: $i) { paymentMethod { id isDefault } } }",
        json!({"i": {"organizationId": org, "brand": "mastercard", "last4": "4444", "expMonth": 1, "expYear": 2031}})).await;
    let card2 = s(&d["addPaymentMethod"]["paymentMethod"]["id"]);
    let d = q(&owner, "mutation($i: PaymentMethodIdInput!) { setDefaultPaymentMethod(input: $i) { paymentMethod { isDefault } } }", json!({"i": {"organizationId": org, "paymentMethodId": card2}})).await;
    assert_eq!(
        d["setDefaultPaymentMethod"]["paymentMethod"]["isDefault"],
        json!(true)
    );
    q(
        &owner,
        "mutation($i: PaymentMethodIdInput!) { setDefaultPaymentMethod(input: $i) { position } }",
        json!({"i": {"organizationId": org, "paymentMethodId": card}}),
    )
    .await;
    let d = q(
        &owner,
        "mutation($i: PaymentMethodIdInput!) { removePaymentMethod(input: $i) { ok } }",
        json!({"i": {"organizationId": org, "paymentMethodId": card2}}),
    )
    .await;
    assert_eq!(d["removePaymentMethod"]["ok"], json!(true));
    let d = q(&owner, "mutation($i: UpdateBillingInformationInput!) { updateBillingInformation(input: $i) { organization { billingInformation { company taxId } } } }",
        json!({"i": {"organizationId": org, "company": "Acme Robotics Ltd", "taxId": "GB123"}})).await;
    assert_eq!(
        d["updateBillingInformation"]["organization"]["billingInformation"]["company"],
        json!("Acme Robotics Ltd")
    );
    let d = q(&owner, "mutation($i: ChangePlanInput!) { changePlan(input: $i) { subscription { plan seats status } position } }",
        json!({"i": {"organizationId": org, "plan": "team", "seats": 10}})).await;
    assert_eq!(d["changePlan"]["subscription"]["plan"], json!("team"));
    let d = q(&owner, "query($o: ID!) { organization(id: $o) { usage { balance grants { amount remaining source } } invoices(first: 5) { totalCount edges { node { id number status total currency lines { description amount } downloadUrl } } } overview { seats { used total } } } }", json!({"o": org})).await;
    assert_eq!(
        d["organization"]["usage"]["balance"],
        json!("10000"),
        "{d:#}"
    );
    assert_eq!(
        d["organization"]["overview"]["seats"],
        json!({"used": 2, "total": 10})
    );
    let invoice = s(&d["organization"]["invoices"]["edges"][0]["node"]["id"]);
    assert_eq!(
        d["organization"]["invoices"]["edges"][0]["node"]["status"],
        json!("OPEN")
    );
    let d = q(
        &owner,
        "mutation($i: PayInvoiceInput!) { payInvoice(input: $i) { invoice { status } } }",
        json!({"i": {"organizationId": org, "invoiceId": invoice}}),
    )
    .await;
    assert_eq!(d["payInvoice"]["invoice"]["status"], json!("PAID"));
    let pdf = srv
        .http
        .get(format!(
            "{}/organizations/{org}/invoices/{invoice}.pdf",
            srv.url
        ))
        .bearer_auth(&owner)
        .send()
        .await
        .expect("pdf");
    assert_eq!(pdf.status(), 200);
    assert!(pdf.bytes().await.expect("bytes").starts_with(b"%PDF"));
    let d = q(&owner, "mutation($i: PurchaseCreditsInput!) { purchaseCredits(input: $i) { usage { balance } position } }", json!({"i": {"organizationId": org, "amount": "5000"}})).await;
    assert_eq!(d["purchaseCredits"]["usage"]["balance"], json!("15000"));
    let d = q(
        &owner,
        "mutation($i: GrantCreditsInput!) { grantCredits(input: $i) { usage { balance } } }",
        json!({"i": {"organizationId": org, "amount": "1000", "source": "promo"}}),
    )
    .await;
    assert_eq!(d["grantCredits"]["usage"]["balance"], json!("16000"));
    let d = q(&owner, "mutation($i: SetUsageAlertInput!) { setUsageAlert(input: $i) { usage { alerts { id threshold state } } } }", json!({"i": {"organizationId": org, "threshold": "15500"}})).await;
    let alert = s(&d["setUsageAlert"]["usage"]["alerts"][0]["id"]);
    assert_eq!(
        d["setUsageAlert"]["usage"]["alerts"][0]["state"],
        json!("OK")
    );
    let d = q(&owner, "mutation($i: SetUsageLimitInput!) { setUsageLimit(input: $i) { usage { limit { period limit usedThisPeriod } } } }", json!({"i": {"organizationId": org, "limit": "100000"}})).await;
    assert_eq!(
        d["setUsageLimit"]["usage"]["limit"]["limit"],
        json!("100000")
    );

    // --- bots and runs
    let d = q(&owner, "mutation($i: RegisterBotInput!) { registerBot(input: $i) { bot { id name machine enabled status registeredAt } botToken position } }",
        json!({"i": {"organizationId": org, "name": "invoice-bot", "machine": "vm-01"}})).await;
    let bot = s(&d["registerBot"]["bot"]["id"]);
    let bot_token = s(&d["registerBot"]["botToken"]);
    assert_eq!(d["registerBot"]["bot"]["status"], json!("OFFLINE"));
    let d = q(&bot_token, "mutation($i: ReportBotStatusInput!) { reportBotStatus(input: $i) { bot { status lastSeenAt } } }", json!({"i": {"botId": bot, "status": "ONLINE"}})).await;
    assert_eq!(d["reportBotStatus"]["bot"]["status"], json!("ONLINE"));
    let d = q(&bot_token, "mutation($i: StartRunInput!) { startRun(input: $i) { run { id status task bot { id } } position } }", json!({"i": {"botId": bot, "task": "read invoices"}})).await;
    let run = s(&d["startRun"]["run"]["id"]);
    assert_eq!(d["startRun"]["run"]["status"], json!("RUNNING"));
    let d = q(&bot_token, "mutation($i: CompleteRunInput!) { completeRun(input: $i) { run { status credits durationMs endedAt } position } }", json!({"i": {"runId": run, "credits": "600"}})).await;
    assert_eq!(d["completeRun"]["run"]["status"], json!("COMPLETED"));
    let d = q(&owner, "query($o: ID!) { organization(id: $o) { usage { balance consumed alerts { state } breakdown(by: BOT) { key credits runs } } bot(id: \"00000000-0000-0000-0000-000000000000\") { id } } }", json!({"o": org})).await;
    assert_eq!(d["organization"]["usage"]["balance"], json!("15400"));
    assert_eq!(d["organization"]["usage"]["consumed"], json!("600"));
    assert_eq!(
        d["organization"]["usage"]["alerts"][0]["state"],
        json!("IN_ALARM")
    );
    assert_eq!(
        d["organization"]["usage"]["breakdown"][0],
        json!({"key": bot, "credits": "600", "runs": 1})
    );
    let d = q(
        &bot_token,
        "mutation($i: StartRunInput!) { startRun(input: $i) { run { id } } }",
        json!({"i": {"botId": bot, "task": "t2"}}),
    )
    .await;
    let run2 = s(&d["startRun"]["run"]["id"]);
    let d = q(
        &bot_token,
        "mutation($i: FailRunInput!) { failRun(input: $i) { run { status error credits } } }",
        json!({"i": {"runId": run2, "error": "timeout", "credits": "10"}}),
    )
    .await;
    assert_eq!(
        d["failRun"]["run"],
        json!({"status": "FAILED", "error": "timeout", "credits": "10"})
    );
    let d = q(
        &bot_token,
        "mutation($i: StartRunInput!) { startRun(input: $i) { run { id } } }",
        json!({"i": {"botId": bot, "task": "t3"}}),
    )
    .await;
    let run3 = s(&d["startRun"]["run"]["id"]);
    let d = q(
        &owner,
        "mutation($i: RunIdInput!) { cancelRun(input: $i) { run { status } } }",
        json!({"i": {"runId": run3}}),
    )
    .await;
    assert_eq!(d["cancelRun"]["run"]["status"], json!("CANCELLED"));
    let d = q(&bot_token, "mutation($i: ConsumeCreditsInput!) { consumeCredits(input: $i) { usage { balance } position } }", json!({"i": {"organizationId": org, "amount": "100", "botId": bot, "key": "k-1"}})).await;
    assert_eq!(d["consumeCredits"]["usage"]["balance"], json!("15290"));
    let d = q(
        &bot_token,
        "mutation($i: ConsumeCreditsInput!) { consumeCredits(input: $i) { usage { balance } } }",
        json!({"i": {"organizationId": org, "amount": "100", "botId": bot, "key": "k-1"}}),
    )
    .await;
    assert_eq!(
        d["consumeCredits"]["usage"]["balance"],
        json!("15290"),
        "idempotent by key"
    );
    assert_eq!(
        srv.code(
            Some(&bot_token),
            "mutation($i: ConsumeCreditsInput!) { consumeCredits(input: $i) { position } }",
            json!({"i": {"organizationId": org, "amount": "99999999", "botId": bot, "key": "k-2"}})
        )
        .await,
        "LIMIT_EXCEEDED"
    );
    let d = q(&owner, "query($o: ID!, $b: ID!) { organization(id: $o) { runs(first: 10) { totalCount edges { node { status } } } bot(id: $b) { creditsConsumed runs(first: 5) { totalCount } } auditLog(first: 50, query: \"action:credits.consumption_denied\") { totalCount } } }", json!({"o": org, "b": bot})).await;
    assert_eq!(d["organization"]["runs"]["totalCount"], json!(3));
    assert_eq!(d["organization"]["bot"]["creditsConsumed"], json!("710"));
    assert_eq!(
        d["organization"]["auditLog"]["totalCount"],
        json!(1),
        "the denial is recorded"
    );
    let d = q(&owner, "mutation($i: UsageAlertIdInput!) { removeUsageAlert(input: $i) { usage { alerts { id } } } }", json!({"i": {"organizationId": org, "alertId": alert}})).await;
    assert_eq!(d["removeUsageAlert"]["usage"]["alerts"], json!([]));
    let d = q(
        &owner,
        "mutation($i: DisableBotInput!) { disableBot(input: $i) { bot { enabled } } }",
        json!({"i": {"botId": bot, "reason": "maintenance"}}),
    )
    .await;
    assert_eq!(d["disableBot"]["bot"]["enabled"], json!(false));
    assert_eq!(
        srv.code(
            Some(&bot_token),
            "mutation($i: StartRunInput!) { startRun(input: $i) { position } }",
            json!({"i": {"botId": bot, "task": "t"}})
        )
        .await,
        "CONFLICT"
    );
    let d = q(
        &owner,
        "mutation($i: BotIdInput!) { enableBot(input: $i) { bot { enabled } } }",
        json!({"i": {"botId": bot}}),
    )
    .await;
    assert_eq!(d["enableBot"]["bot"]["enabled"], json!(true));

    // --- triggers
    let d = q(&owner, "mutation($i: CreateTriggerInput!) { createTrigger(input: $i) { trigger { id name kind schedule enabled fireCount bot { id } } } }",
        json!({"i": {"organizationId": org, "name": "nightly", "kind": "SCHEDULE", "schedule": "0 2 * * *", "botId": bot, "task": "nightly run"}})).await;
    let trig = s(&d["createTrigger"]["trigger"]["id"]);
    assert_eq!(d["createTrigger"]["trigger"]["enabled"], json!(true));
    let d = q(&owner, "mutation($i: UpdateTriggerInput!) { updateTrigger(input: $i) { trigger { name schedule } } }", json!({"i": {"triggerId": trig, "name": "nightly-2", "schedule": "0 3 * * *"}})).await;
    assert_eq!(
        d["updateTrigger"]["trigger"],
        json!({"name": "nightly-2", "schedule": "0 3 * * *"})
    );
    let d = q(&owner, "mutation($i: TriggerIdInput!) { fireTrigger(input: $i) { run { status task trigger { id fireCount lastFiredAt } } } }", json!({"i": {"triggerId": trig}})).await;
    assert_eq!(d["fireTrigger"]["run"]["trigger"]["fireCount"], json!(1));
    assert_eq!(d["fireTrigger"]["run"]["task"], json!("nightly run"));
    let d = q(
        &owner,
        "mutation($i: TriggerIdInput!) { disableTrigger(input: $i) { trigger { enabled } } }",
        json!({"i": {"triggerId": trig}}),
    )
    .await;
    assert_eq!(d["disableTrigger"]["trigger"]["enabled"], json!(false));
    let d = q(
        &owner,
        "mutation($i: TriggerIdInput!) { enableTrigger(input: $i) { trigger { enabled } } }",
        json!({"i": {"triggerId": trig}}),
    )
    .await;
    assert_eq!(d["enableTrigger"]["trigger"]["enabled"], json!(true));
    let d = q(
        &owner,
        "mutation($i: TriggerIdInput!) { deleteTrigger(input: $i) { ok } }",
        json!({"i": {"triggerId": trig}}),
    )
    .await;
    assert_eq!(d["deleteTrigger"]["ok"], json!(true));
    let d = q(
        &owner,
        "query($o: ID!) { organization(id: $o) { triggers(first: 5) { totalCount } } }",
        json!({"o": org}),
    )
    .await;
    assert_eq!(d["organization"]["triggers"]["totalCount"], json!(0));

    // --- invoices: void one
    let d = q(
        &owner,
        "mutation($i: ChangePlanInput!) { changePlan(input: $i) { subscription { plan } } }",
        json!({"i": {"organizationId": org, "plan": "business", "seats": 10}}),
    )
    .await;
    assert_eq!(d["changePlan"]["subscription"]["plan"], json!("business"));
    let d = q(&owner, "query($o: ID!) { organization(id: $o) { invoices(first: 1) { edges { node { id status } } } } }", json!({"o": org})).await;
    let open = s(&d["organization"]["invoices"]["edges"][0]["node"]["id"]);
    let d = q(
        &owner,
        "mutation($i: InvoiceIdInput!) { voidInvoice(input: $i) { invoice { status } } }",
        json!({"i": {"organizationId": org, "invoiceId": open}}),
    )
    .await;
    assert_eq!(d["voidInvoice"]["invoice"]["status"], json!("VOID"));
    let d = q(&owner, "mutation($i: OrganizationIdInput!) { cancelSubscription(input: $i) { subscription { cancelAtPeriodEnd } } }", json!({"i": {"organizationId": org}})).await;
    assert_eq!(
        d["cancelSubscription"]["subscription"]["cancelAtPeriodEnd"],
        json!(true)
    );

    // --- ownership, removal, leaving
    let d = q(&owner, "mutation($i: TransferOwnershipInput!) { transferOwnership(input: $i) { organization { members(first: 5) { edges { node { user { id } roles { id } } } } } } }", json!({"i": {"organizationId": org, "userId": bob_id}})).await;
    let members = d["transferOwnership"]["organization"]["members"]["edges"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        members
            .iter()
            .any(|m| m["node"]["user"]["id"] == json!(bob_id)
                && m["node"]["roles"]
                    .as_array()
                    .is_some_and(|r| r.iter().any(|r| r["id"] == json!("owner")))),
        "{members:?}"
    );
    let d = q(
        &owner,
        "mutation($i: OrganizationIdInput!) { leaveOrganization(input: $i) { ok position } }",
        json!({"i": {"organizationId": org}}),
    )
    .await;
    assert_eq!(d["leaveOrganization"]["ok"], json!(true));
    assert_eq!(
        srv.code(
            Some(&owner),
            "query($o: ID!) { organization(id: $o) { name } }",
            json!({"o": org})
        )
        .await,
        "NOT_FOUND"
    );
    let (dave, dave_id) = srv.sign_up("dave@acme.test", "Dave").await;
    srv.join(&bob, &org, "dave@acme.test", &dave, "MEMBER")
        .await;
    let d = q(&bob, "mutation($i: MemberInput!) { removeMember(input: $i) { organization { members(first: 5) { totalCount } } } }", json!({"i": {"organizationId": org, "userId": dave_id}})).await;
    assert_eq!(
        d["removeMember"]["organization"]["members"]["totalCount"],
        json!(1)
    );

    // --- account
    let d = q(&bob, "mutation($i: ChangePasswordInput!) { changePassword(input: $i) { ok } }", json!({"i": {"currentPassword": "correct horse battery", "newPassword": "a much longer passphrase"}})).await;
    assert_eq!(d["changePassword"]["ok"], json!(true));
    let d = q(&bob, "mutation { signOut { ok } }", json!({})).await;
    assert_eq!(d["signOut"]["ok"], json!(true));
    assert_eq!(
        srv.code(Some(&bob), "{ viewer { id } }", json!({})).await,
        "UNAUTHENTICATED"
    );
    assert_eq!(
        srv.code(
            None,
            "mutation($i: SignInInput!) { signIn(input: $i) { token } }",
            json!({"i": {"email": "bob@acme.test", "password": "correct horse battery"}})
        )
        .await,
        "UNAUTHENTICATED"
    );
    let d = srv
        .ok(
            None,
            "mutation($i: SignInInput!) { signIn(input: $i) { token user { alias } } }",
            json!({"i": {"email": "BOB@acme.test", "password": "a much longer passphrase"}}),
        )
        .await;
    let bob2 = s(&d["signIn"]["token"]);
    let d = q(
        &bob2,
        "{ viewer { alias memberships { organization { name } } } }",
        json!({}),
    )
    .await;
    assert_eq!(
        d["viewer"]["memberships"][0]["organization"]["name"],
        json!("Acme Robotics")
    );

    // --- operators
    let d = srv
        .ok(
            Some(common::OPERATOR),
            "{ projections { name version position lag state } }",
            json!({}),
        )
        .await;
    assert_eq!(d["projections"].as_array().map(Vec::len), Some(5));
    let d = srv
        .ok(
            Some(common::OPERATOR),
            "mutation { rebuildProjection(name: \"audit\") { name state } }",
            json!({}),
        )
        .await;
    assert_eq!(d["rebuildProjection"]["name"], json!("audit"));
}
