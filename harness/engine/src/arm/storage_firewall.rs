//! A storage account's firewall, `properties.networkAcls` of `Microsoft.Storage/storageAccounts`:
//! whether it admits an address ([`NetworkRules::admission`]), and one IP rule added or removed
//! by read-modify-write PATCH that keeps every other rule ([`StorageFirewall`]).

use std::net::{IpAddr, Ipv4Addr};

use serde_json::{json, Value};

use super::api;
use super::client::ArmClient;
use super::error::ArmError;
use crate::secrets::redact;

/// What `properties.networkAcls` (and `publicNetworkAccess`) say about who may connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkRules {
    /// `properties.publicNetworkAccess` (`Enabled`, `Disabled`, `SecuredByPerimeter`), if set.
    pub public_network_access: Option<String>,
    /// `networkAcls.defaultAction` is `Deny` (absent means `Allow`).
    pub denies_by_default: bool,
    /// `networkAcls.ipRules[].value` of the rules that allow (addresses and CIDR ranges).
    pub ip_rules: Vec<String>,
    /// How many `networkAcls.virtualNetworkRules` there are (subnets, e.g. the AKS subnet).
    pub virtual_network_rules: usize,
}

/// Whether the account admits an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// `defaultAction` Allow: every network.
    OpenToAll,
    /// `defaultAction` Deny, and this IP rule admits the address.
    AllowedBy(String),
    /// `defaultAction` Deny, and no IP rule admits the address.
    Denied,
    /// `publicNetworkAccess` is not Enabled: no public address gets in, whatever the rules.
    PublicAccessOff(String),
}

impl NetworkRules {
    /// From a storage account GET body.
    pub fn from_account(account: &Value) -> Result<NetworkRules, String> {
        let properties = account
            .get("properties")
            .ok_or("the storage account has no `properties`")?;
        let public_network_access = properties
            .get("publicNetworkAccess")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let Some(acls) = properties.get("networkAcls").filter(|a| !a.is_null()) else {
            // No network rules at all: the account's default, Allow.
            return Ok(NetworkRules {
                public_network_access,
                denies_by_default: false,
                ip_rules: Vec::new(),
                virtual_network_rules: 0,
            });
        };
        let denies_by_default = match acls.get("defaultAction").and_then(Value::as_str) {
            Some(action) if action.eq_ignore_ascii_case("Deny") => true,
            Some(action) if action.eq_ignore_ascii_case("Allow") => false,
            None => false,
            Some(other) => {
                return Err(format!(
                    "networkAcls.defaultAction is {other:?}, expected \"Allow\" or \"Deny\""
                ))
            }
        };
        let ip_rules = acls
            .get("ipRules")
            .and_then(Value::as_array)
            .map(|rules| {
                rules
                    .iter()
                    .filter(|r| {
                        r.get("action")
                            .and_then(Value::as_str)
                            .is_none_or(|a| a.eq_ignore_ascii_case("Allow"))
                    })
                    .filter_map(|r| r.get("value").and_then(Value::as_str))
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let virtual_network_rules = acls
            .get("virtualNetworkRules")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        Ok(NetworkRules {
            public_network_access,
            denies_by_default,
            ip_rules,
            virtual_network_rules,
        })
    }

    /// Whether a request from `address` gets past the firewall.
    pub fn admission(&self, address: IpAddr) -> Admission {
        if let Some(access) = &self.public_network_access {
            if !access.eq_ignore_ascii_case("Enabled") {
                return Admission::PublicAccessOff(access.clone());
            }
        }
        if !self.denies_by_default {
            return Admission::OpenToAll;
        }
        match self
            .ip_rules
            .iter()
            .find(|rule| ip_rule_contains(rule, address))
        {
            Some(rule) => Admission::AllowedBy(rule.clone()),
            None => Admission::Denied,
        }
    }
}

/// True when IP rule `rule` (`a.b.c.d` or `a.b.c.d/n`) covers `address`. Storage IP rules
/// are IPv4 only, so an IPv6 address is covered by none.
pub fn ip_rule_contains(rule: &str, address: IpAddr) -> bool {
    let IpAddr::V4(address) = address else {
        return false;
    };
    let (network, prefix) = match rule.trim().split_once('/') {
        Some((network, prefix)) => match prefix.parse::<u32>() {
            Ok(prefix) if prefix <= 32 => (network, prefix),
            _ => return false,
        },
        None => (rule.trim(), 32),
    };
    let Ok(network) = network.parse::<Ipv4Addr>() else {
        return false;
    };
    let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
    u32::from(network) & mask == u32::from(address) & mask
}

/// Why `address` cannot be a storage IP rule, if it cannot: rules take public IPv4 addresses
/// only (the service refuses private ranges, and IPv6 is not supported).
pub fn ip_rule_refusal(address: IpAddr) -> Option<&'static str> {
    match address {
        IpAddr::V6(_) => Some("storage account IP rules take IPv4 addresses only"),
        IpAddr::V4(v4)
            if v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.octets()[0] == 100 && (64..128).contains(&v4.octets()[1]) =>
        {
            Some("it is not a public address (storage account IP rules refuse private, loopback and shared ranges): the firewall sees this machine's public (NAT) address, set it with EDW_RUNNER_IP")
        }
        IpAddr::V4(_) => None,
    }
}

/// What [`StorageFirewall::remove_ip_rule`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleRemoval {
    /// The rule was there and is now gone.
    Removed,
    /// The rule was no longer there: nothing was changed.
    AlreadyGone,
}

/// One storage account's firewall through Azure Resource Manager.
#[derive(Debug, Clone)]
pub struct StorageFirewall<'a> {
    client: &'a ArmClient,
    account_id: String,
}

impl<'a> StorageFirewall<'a> {
    /// The firewall of the account with ARM id `account_id`.
    pub fn new(client: &'a ArmClient, account_id: &str) -> Self {
        StorageFirewall {
            client,
            account_id: account_id.to_owned(),
        }
    }

    /// The account's ARM id.
    pub fn account_id(&self) -> &str {
        &self.account_id
    }

    /// The account as ARM returns it, and its network rules.
    pub async fn read(&self) -> Result<(Value, NetworkRules), ArmError> {
        let account = self.client.get(&self.account_id, api::STORAGE).await?;
        let rules = NetworkRules::from_account(&account)
            .map_err(|reason| ArmError::malformed(&self.account_id, 200, reason))?;
        Ok((account, rules))
    }

    /// Adds `{value: address, action: Allow}` to the ipRules of `account` (a body [`read`]
    /// returned just before), PATCHing `properties.networkAcls` with every other field and
    /// rule as read, then waits until ARM shows the rule with provisioningState Succeeded.
    ///
    /// [`read`]: StorageFirewall::read
    pub async fn add_ip_rule(&self, account: &Value, address: IpAddr) -> Result<(), ArmError> {
        let mut acls = account
            .pointer("/properties/networkAcls")
            .cloned()
            .unwrap_or_else(|| json!({}));
        let value = address.to_string();
        let rule = json!({"value": value, "action": "Allow"});
        match acls.get_mut("ipRules").and_then(Value::as_array_mut) {
            Some(rules) => rules.push(rule),
            None => acls["ipRules"] = json!([rule]),
        }
        self.patch_network_acls(acls).await?;
        self.wait_until(&value, true).await
    }

    /// Removes the IP rule whose value is exactly `address` (read just before, so that rules
    /// added since are kept), if it is still there; every other rule stays.
    pub async fn remove_ip_rule(&self, address: IpAddr) -> Result<RuleRemoval, ArmError> {
        let value = address.to_string();
        let (account, _) = self.read().await?;
        let Some(mut acls) = account.pointer("/properties/networkAcls").cloned() else {
            return Ok(RuleRemoval::AlreadyGone);
        };
        let Some(rules) = acls.get_mut("ipRules").and_then(Value::as_array_mut) else {
            return Ok(RuleRemoval::AlreadyGone);
        };
        let before = rules.len();
        rules.retain(|r| r.get("value").and_then(Value::as_str) != Some(value.as_str()));
        if rules.len() == before {
            return Ok(RuleRemoval::AlreadyGone);
        }
        self.patch_network_acls(acls).await?;
        self.wait_until(&value, false).await?;
        Ok(RuleRemoval::Removed)
    }

    async fn patch_network_acls(&self, acls: Value) -> Result<(), ArmError> {
        let body = json!({"properties": {"networkAcls": acls}});
        self.client
            .patch(&self.account_id, api::STORAGE, &body)
            .await
            .map(|_| ())
    }

    /// Reads the account until its provisioningState is Succeeded and the IP rule `value` is
    /// there (`present`) or gone, within the client's operation deadline.
    async fn wait_until(&self, value: &str, present: bool) -> Result<(), ArmError> {
        let settings = self.client.settings().clone();
        let started = tokio::time::Instant::now();
        let deadline = started + settings.operation_deadline;
        loop {
            let (account, rules) = self.read().await?;
            let state = account
                .pointer("/properties/provisioningState")
                .and_then(Value::as_str)
                .unwrap_or("Succeeded");
            let has_rule = rules.ip_rules.iter().any(|r| r == value);
            if state.eq_ignore_ascii_case("Succeeded") && has_rule == present {
                return Ok(());
            }
            if tokio::time::Instant::now() + settings.poll_interval > deadline {
                return Err(ArmError::Timeout {
                    resource: redact(&self.account_id),
                    waited: started.elapsed(),
                    last: format!(
                        "provisioningState {state}, ipRule {value} {}",
                        if has_rule { "present" } else { "absent" }
                    ),
                });
            }
            tokio::time::sleep(settings.poll_interval).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn ip_rules_match_single_addresses_and_cidr_ranges() {
        assert!(ip_rule_contains("25.1.2.3", ip("25.1.2.3")));
        assert!(!ip_rule_contains("25.1.2.3", ip("25.1.2.4")));
        assert!(ip_rule_contains("25.2.0.0/24", ip("25.2.0.77")));
        assert!(ip_rule_contains(" 25.2.0.0/24 ", ip("25.2.0.255")));
        assert!(!ip_rule_contains("25.2.0.0/24", ip("25.2.1.0")));
        assert!(ip_rule_contains("0.0.0.0/0", ip("8.8.8.8")));
        assert!(ip_rule_contains("25.2.0.9/30", ip("25.2.0.10")));
        assert!(!ip_rule_contains("25.2.0.0/33", ip("25.2.0.1")));
        assert!(!ip_rule_contains("not-an-address", ip("25.2.0.1")));
        assert!(!ip_rule_contains("25.2.0.0/24", ip("2001:db8::1")));
    }

    #[test]
    fn the_default_action_and_the_rules_decide() {
        let account = |acls: Value| json!({"properties": {"networkAcls": acls}});
        let deny = NetworkRules::from_account(&account(json!({
            "defaultAction": "Deny",
            "ipRules": [
                {"value": "25.1.2.3", "action": "Allow"},
                {"value": "25.2.0.0/24"}
            ],
            "virtualNetworkRules": [{"id": "/subscriptions/s/…/subnets/aks", "action": "Allow"}]
        })))
        .unwrap();
        assert_eq!(deny.virtual_network_rules, 1);
        assert_eq!(
            deny.admission(ip("25.2.0.5")),
            Admission::AllowedBy("25.2.0.0/24".into())
        );
        assert_eq!(deny.admission(ip("20.1.1.1")), Admission::Denied);
        let allow =
            NetworkRules::from_account(&account(json!({"defaultAction": "Allow"}))).unwrap();
        assert_eq!(allow.admission(ip("20.1.1.1")), Admission::OpenToAll);
        let none = NetworkRules::from_account(&json!({"properties": {}})).unwrap();
        assert_eq!(none.admission(ip("20.1.1.1")), Admission::OpenToAll);
        let off = NetworkRules::from_account(&json!({"properties": {
            "publicNetworkAccess": "Disabled", "networkAcls": {"defaultAction": "Allow"}
        }}))
        .unwrap();
        assert_eq!(
            off.admission(ip("20.1.1.1")),
            Admission::PublicAccessOff("Disabled".into())
        );
        let bad = NetworkRules::from_account(&account(json!({"defaultAction": "Maybe"})));
        assert!(bad.unwrap_err().contains("\"Maybe\""));
        assert!(NetworkRules::from_account(&json!({})).is_err());
    }

    #[test]
    fn only_public_ipv4_addresses_can_be_rules() {
        assert_eq!(ip_rule_refusal(ip("20.1.1.1")), None);
        for refused in [
            "10.0.0.4",
            "192.168.1.2",
            "172.16.0.1",
            "127.0.0.1",
            "100.64.0.1",
            "::1",
        ] {
            assert!(ip_rule_refusal(ip(refused)).is_some(), "{refused}");
        }
    }
}
