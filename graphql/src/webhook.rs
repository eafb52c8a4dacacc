//! Where the server may send a webhook: public addresses only, unless the operator
//! allows private ones (`ORGLINE_WEBHOOKS_ALLOW_PRIVATE=1`, for a webhook receiver on
//! the same network). Otherwise a member with `credits:manage` could point a usage
//! alert at the server's own neighbourhood (a cloud metadata service, an admin port on
//! loopback) and have the server call it: server-side request forgery.
//!
//! Checked twice: when an alert is set (`BAD_USER_INPUT` for an address literal that is
//! not public) and when a webhook is sent, where host names are resolved through
//! [`PublicOnly`], which drops every address that is not public, and redirects are not
//! followed.

use crate::error::{ApiError, ApiResult};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// Whether `ip` is an address of the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || a == 0
        // Shared address space (carrier-grade NAT), 100.64.0.0/10.
        || (a == 100 && (64..128).contains(&b))
        // Benchmarking, 198.18.0.0/15; reserved, 240.0.0.0/4.
        || (a == 198 && (b == 18 || b == 19))
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        // Unique local fc00::/7, link-local fe80::/10, documentation 2001:db8::/32.
        || (first & 0xfe00) == 0xfc00
        || (first & 0xffc0) == 0xfe80
        || (first == 0x2001 && ip.segments()[1] == 0x0db8))
}

/// Refuses a webhook URL whose host is an address literal that is not public (a host
/// name is checked when it is resolved, at each delivery).
pub fn check_url(url: &str, allow_private: bool) -> ApiResult<()> {
    if allow_private {
        return Ok(());
    }
    let parsed = reqwest::Url::parse(url.trim())
        .map_err(|e| ApiError::bad_input(format!("webhookUrl is not a URL: {e}")))?;
    let literal = parsed.host_str().and_then(|h| {
        h.trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .ok()
    });
    let named_local = parsed
        .host_str()
        .is_some_and(|h| h.eq_ignore_ascii_case("localhost") || h.ends_with(".localhost"));
    if literal.is_some_and(|ip| !is_public(ip)) || named_local {
        return Err(ApiError::bad_input(
            "webhookUrl must be a public address: the server does not call private, \
             loopback or link-local addresses",
        ));
    }
    Ok(())
}

/// A resolver that keeps only public addresses: a host name that resolves to none
/// fails to connect.
pub struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let found = tokio::net::lookup_host((name.as_str(), 0)).await?;
            let public: Vec<SocketAddr> = found.filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                return Err(format!("{} has no public address", name.as_str()).into());
            }
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The client that sends webhooks: five seconds each, no redirects, and (unless
/// private addresses are allowed) public addresses only.
pub fn client(allow_private: bool) -> ApiResult<reqwest::Client> {
    let builder = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none());
    let builder = if allow_private {
        builder
    } else {
        builder.dns_resolver(std::sync::Arc::new(PublicOnly))
    };
    builder.build().map_err(ApiError::internal)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A host name resolving to loopback is not called (the check at set time sees
    /// only a name); with private addresses allowed it is.
    #[tokio::test]
    async fn names_resolving_to_private_addresses_are_not_called() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            let app = axum::Router::new().route("/", axum::routing::post(|| async { "ok" }));
            let _ = axum::serve(listener, app).await;
        });
        let url = format!("http://localhost:{port}/");
        let refused = client(false).expect("client").post(&url).send().await;
        assert!(refused.is_err(), "{refused:?}");
        let allowed = client(true).expect("client").post(&url).send().await;
        assert!(allowed.is_ok_and(|r| r.status().is_success()));
    }

    #[test]
    fn only_public_addresses_pass() {
        for private in [
            "http://169.254.169.254/latest/meta-data",
            "http://127.0.0.1:8080/x",
            "http://10.0.0.5/x",
            "http://192.168.1.1/x",
            "http://172.16.0.1/x",
            "http://100.64.0.1/x",
            "http://0.0.0.0/x",
            "http://[::1]/x",
            "http://[fd00::1]/x",
            "http://[fe80::1]/x",
            "http://[::ffff:127.0.0.1]/x",
            "http://localhost:9000/x",
        ] {
            assert!(check_url(private, false).is_err(), "{private}");
            assert!(check_url(private, true).is_ok(), "{private} when allowed");
        }
        for public in [
            "https://hooks.example.com/orgline",
            "http://8.8.8.8/x",
            "https://[2606:4700::1111]/x",
        ] {
            assert!(check_url(public, false).is_ok(), "{public}");
        }
    }
}
