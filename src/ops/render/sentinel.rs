//! The lines `status` and `pending` print under Sentinel: the master they read, and for
//! `status` whether the sentinels agree on it (which ones name another master, which do not
//! answer and why).

use redline_core::redis::RedisConfig;
use redline_streams::SentinelStatus;

/// `Redis master 127.0.0.1:6380 ('mymaster', found through the sentinels)`, then a blank
/// line.
pub(crate) fn master_line(config: &RedisConfig, master: &str) -> String {
    let name = config
        .sentinel_url()
        .map(|url| url.master_name)
        .unwrap_or_default();
    format!("Redis master {master} ('{name}', found through the sentinels)\n\n")
}

/// The master line, a line on the sentinels (all agree, or each one's view), a blank line.
pub(super) fn render(status: &SentinelStatus) -> String {
    let mut out = format!(
        "Redis master {} ('{}', found through the sentinels)\n",
        status.master, status.master_name
    );
    let total = status.sentinels.len();
    if status.agree {
        out.push_str(&format!("sentinels: all {total} name it\n"));
    } else {
        let naming = status
            .sentinels
            .iter()
            .filter(|s| s.master.as_deref() == Some(status.master.as_str()))
            .count();
        let disagree = status
            .sentinels
            .iter()
            .any(|s| s.master.as_deref().is_some_and(|m| m != status.master));
        if disagree {
            out.push_str(&format!(
                "warning: the sentinels disagree on the master: {naming} of {total} name it\n"
            ));
        } else {
            out.push_str(&format!(
                "warning: only {naming} of {total} sentinels name it\n"
            ));
        }
        for view in &status.sentinels {
            let said = match (&view.master, &view.error) {
                (Some(master), _) => format!("names {master}"),
                (None, Some(error)) => error.clone(),
                (None, None) => "no answer".to_string(),
            };
            out.push_str(&format!("  sentinel {}: {said}\n", view.address));
        }
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use redline_core::redis::SentinelView;

    use super::*;

    fn view(address: &str, master: Option<&str>, error: Option<&str>) -> SentinelView {
        SentinelView {
            address: address.into(),
            master: master.map(str::to_string),
            error: error.map(str::to_string),
        }
    }

    #[test]
    fn agreeing_sentinels_take_one_line_and_disagreeing_ones_one_each() {
        let mut status = SentinelStatus {
            master_name: "mymaster".into(),
            master: "10.0.0.1:6379".into(),
            agree: true,
            sentinels: vec![
                view("s1:26379", Some("10.0.0.1:6379"), None),
                view("s2:26379", Some("10.0.0.1:6379"), None),
            ],
        };
        assert_eq!(
            render(&status),
            "Redis master 10.0.0.1:6379 ('mymaster', found through the sentinels)\n\
             sentinels: all 2 name it\n\n"
        );
        status.agree = false;
        status.sentinels[1] = view("s2:26379", Some("10.0.0.2:6379"), None);
        status
            .sentinels
            .push(view("s3:26379", None, Some("Connection refused")));
        assert_eq!(
            render(&status),
            "Redis master 10.0.0.1:6379 ('mymaster', found through the sentinels)\n\
             warning: the sentinels disagree on the master: 1 of 3 name it\n  \
             sentinel s1:26379: names 10.0.0.1:6379\n  \
             sentinel s2:26379: names 10.0.0.2:6379\n  \
             sentinel s3:26379: Connection refused\n\n"
        );
    }
}
