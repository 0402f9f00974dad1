//! An identity provider's key set (LETTA_BRIDGE_USER_TOKEN_JWKS_URL): ES256,
//! EdDSA and RS256 tokens verify with its keys, fetched once and kept; an
//! unknown `kid` fetches the set once more, then is refused, and a burst of
//! made-up `kid`s does not reach the provider again.

use jsonwebtoken::Algorithm;
use serde_json::json;

use super::*;

#[tokio::test]
async fn es256_eddsa_and_rs256_tokens_verify_at_every_door_with_keys_fetched_once() {
    let (ec, ed, rsa) = (SigningKey::es256("ec-1"), SigningKey::ed25519("ed-1"), SigningKey::rs256());
    let keys = KeySet::serve(&[&ec, &ed, &rsa]).await;
    let app = spawn_with_user_tokens(Some(&keys), |_| {}).await;
    let _rt = app.runtime(DEVICE).await;
    for key in [&ec, &ed, &rsa] {
        let token = key.sign(&claims(json!({})));
        for door in DOORS {
            let expected = app.knock(door, CLIENT_TOKEN).await.status;
            assert_eq!(app.knock(door, &token).await.status, expected, "{:?} at {door:?}", key.alg);
        }
    }
    assert_eq!(keys.fetches(), 1, "one fetch serves every token while the keys are fresh");
}

#[tokio::test]
async fn a_key_the_provider_published_since_is_fetched_on_its_first_token() {
    let (first, second) = (SigningKey::es256("ec-1"), SigningKey::ed25519("ed-2"));
    let keys = KeySet::serve(&[&first]).await;
    let app = spawn_with_user_tokens(Some(&keys), |_| {}).await;
    assert_eq!(app.knock(Door::Rest, &first.sign(&claims(json!({})))).await.status, 200);
    keys.add(&second);
    assert_eq!(app.knock(Door::Rest, &second.sign(&claims(json!({})))).await.status, 200);
    assert_eq!(keys.fetches(), 2);
}

#[tokio::test]
async fn an_unknown_kid_fetches_the_set_once_then_is_refused_and_a_burst_of_them_fetches_no_more() {
    let ec = SigningKey::es256("ec-1");
    let keys = KeySet::serve(&[&ec]).await;
    let app = spawn_with_user_tokens(Some(&keys), |_| {}).await;
    assert_eq!(app.knock(Door::Rest, &ec.sign(&claims(json!({})))).await.status, 200);
    assert_eq!(keys.fetches(), 1);
    let forged = |i: usize| {
        let kid = format!("made-up-{i}");
        let header = jsonwebtoken::Header { kid: Some(kid), ..jsonwebtoken::Header::new(Algorithm::ES256) };
        jsonwebtoken::encode(&header, &claims(json!({})), &ec.key).unwrap()
    };
    let burst = (0..20).map(|i| {
        let (app, token) = (&app, forged(i));
        async move { app.knock(Door::Rest, &token).await }
    });
    for answer in futures_util::future::join_all(burst).await {
        assert!(answer.assert_invalid_token("a made-up kid").contains("no key with kid made-up-"), "{answer:?}");
    }
    assert_eq!(keys.fetches(), 2, "one fetch for the whole burst");
    app.knock(Door::Sse, &forged(99)).await.assert_invalid_token("one more");
    assert_eq!(keys.fetches(), 2, "none within the refresh interval");
    assert_eq!(app.knock(Door::Rest, &ec.sign(&claims(json!({})))).await.status, 200, "known keys still verify");
}

#[tokio::test]
async fn a_key_of_the_set_verifies_only_the_algorithm_it_is_for() {
    let (ec, ed) = (SigningKey::es256("ec-1"), SigningKey::ed25519("ed-1"));
    let keys = KeySet::serve(&[&ec, &ed]).await;
    let app = spawn_with_user_tokens(Some(&keys), |_| {}).await;
    // Signed by the Ed25519 key but naming the P-256 key's kid, and the reverse.
    let crossed = [
        signed(Algorithm::EdDSA, "ec-1", &ed.key, &claims(json!({}))),
        signed(Algorithm::ES256, "ed-1", &ec.key, &claims(json!({}))),
    ];
    for token in crossed {
        app.knock(Door::Rest, &token).await.assert_invalid_token("a key under another algorithm");
    }
}

#[tokio::test]
async fn a_key_set_that_cannot_be_fetched_is_503_with_retry_after_not_a_bad_token() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let app = spawn_app_with(|c| c.user_token_jwks_url = Some(format!("http://{closed}/jwks.json"))).await;
    let token = SigningKey::es256("ec-1").sign(&claims(json!({})));
    for _ in 0..2 {
        let res = app.get_as(Some(&token), "/runtimes").await;
        assert_eq!(res.headers()["retry-after"], "2");
        let problem = assert_problem(res, 503).await;
        assert_eq!(problem["type"], "urn:letta-bridge:keys-unavailable", "{problem}");
    }
    let hs = hs256(USER_SECRET.as_bytes(), &claims(json!({})));
    let no_secret = app.knock(Door::Rest, &hs).await.assert_invalid_token("HS256 without a secret");
    assert!(no_secret.contains("no LETTA_BRIDGE_USER_TOKEN_SECRET"), "{no_secret}");
}
