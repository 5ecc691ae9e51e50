//! A link profile for a running lab, as a DBA would write it for those
//! servers, and its secrets beside it.

use std::io;
use std::path::PathBuf;

use super::scenario::Scenario;
use super::{LAB_MASTER_KEY_PASSWORD, Lab};
use crate::profile::{DnsSection, ManagedInstanceSection, ProbesSection, Profile, Secret, SqlServerSection};

impl Lab {
    /// A profile for a running lab, as a DBA would write it for those servers.
    pub fn profile(&self, scenario: &Scenario) -> Profile {
        let (s, m) = (&self.info.sql_server, &self.info.managed_instance);
        Profile {
            sql_server: SqlServerSection {
                host: s.fqdn.clone(),
                user: Some(s.user.clone()),
                endpoint_host: scenario.sql_server.endpoint.as_ref().and_then(|e| e.url_host.clone()),
                endpoint_port: scenario.plan.endpoint_port.or(scenario.sql_server.endpoint.as_ref().map(|e| e.port)),
                ca_cert: Some(s.ca_cert.clone().into()),
                trust_server_certificate: scenario.plan.trust_server_certificate,
                ..Default::default()
            },
            managed_instance: ManagedInstanceSection {
                fqdn: m.fqdn.clone(),
                user: Some(m.user.clone()),
                ca_cert: Some(m.ca_cert.clone().into()),
                failback: scenario.plan.failback,
                trust_server_certificate: scenario.plan.trust_server_certificate,
                ..Default::default()
            },
            databases: scenario
                .plan
                .databases
                .clone()
                .unwrap_or_else(|| scenario.sql_server.databases.iter().map(|d| d.name.clone()).collect()),
            thresholds: scenario.plan.thresholds.clone().unwrap_or_default(),
            probes: ProbesSection {
                agent_jobs: scenario.plan.job_probes,
                temp_endpoint: scenario.plan.temp_endpoint,
                ..Default::default()
            },
            dns: DnsSection {
                servers: vec![format!("{}:{}", self.info.dns.host, self.info.dns.port)],
                // The lab's names exist only in its own DNS server.
                os_resolver: false,
            },
            arm: crate::profile::ArmSection {
                base_url: self.info.arm.base_url.clone(),
                subscription_id: Some(self.info.arm.subscription_id.clone()),
                resource_group: Some(self.info.arm.resource_group.clone()),
                managed_instance: Some(self.info.arm.managed_instance.clone()),
                auth: crate::profile::ArmAuth::Token,
                ca_cert: Some(self.info.arm.ca_cert.clone().into()),
                ..Default::default()
            },
            sql_password: Some(Secret::new(s.password.clone())),
            mi_password: Some(Secret::new(m.password.clone())),
            link: crate::profile::LinkSection {
                journal: Some(self.dir.join("link.journal.jsonl")),
                mode: scenario.plan.link_mode,
                name: scenario.plan.link_name.clone(),
                ..Default::default()
            },
            arm_token: Some(Secret::new(self.info.arm.token.clone())),
            master_key_password: Some(Secret::new(LAB_MASTER_KEY_PASSWORD)),
            ..Default::default()
        }
    }

    /// Writes a ready link profile for this lab (`link.toml`, its secrets in
    /// `link.secrets.toml` beside it, mode 0600), so `milink … --profile` works
    /// against the running lab as against production.
    pub fn write_profile(&self, scenario: &Scenario) -> io::Result<PathBuf> {
        let mut p = self.profile(scenario);
        let secrets = crate::profile::Secrets {
            sql_password: p.sql_password.take().map(|s| s.expose().to_string()),
            mi_password: p.mi_password.take().map(|s| s.expose().to_string()),
            mi_token: None,
            arm_token: p.arm_token.take().map(|s| s.expose().to_string()),
            master_key_password: p.master_key_password.take().map(|s| s.expose().to_string()),
        };
        let secrets_path = self.dir.join("link.secrets.toml");
        secrets.write(&secrets_path)?;
        p.secrets_file = Some("link.secrets.toml".into());
        let path = self.dir.join("link.toml");
        let text = toml::to_string(&p).map_err(io::Error::other)?;
        std::fs::write(
            &path,
            format!("# A link profile for the running milink lab ({}).\n{text}", scenario.description),
        )?;
        Ok(path)
    }
}
