//! Get/PutBucketNotificationConfiguration: queue configurations naming this server's
//! targets (`arn:cairn:sqs::<ID>:webhook`), kept in the bucket record. Topic (SNS) and
//! Lambda destinations cannot exist here and are refused like unknown ARNs; EventBridge is
//! not implemented.

use axum::body::Body;
use http::Response;
use serde::{Deserialize, Serialize};

use super::access::{bucket, put_config};
use super::error::S3Error;
use super::xml::{self, NS};
use super::{xml_response, Ctx, S3State};
use crate::bucket::notification::{Notification, Rule};

const MAX_BODY: usize = 256 * 1024;

#[derive(Serialize, Deserialize, Default)]
#[serde(rename = "NotificationConfiguration")]
struct ConfigXml {
    #[serde(rename = "@xmlns", default, skip_deserializing)]
    xmlns: &'static str,
    #[serde(rename = "QueueConfiguration", default)]
    queues: Vec<QueueXml>,
    #[serde(rename = "TopicConfiguration", default, skip_serializing)]
    topics: Vec<OtherXml>,
    #[serde(rename = "CloudFunctionConfiguration", default, skip_serializing)]
    functions: Vec<OtherXml>,
    #[serde(rename = "EventBridgeConfiguration", default, skip_serializing)]
    event_bridge: Option<serde::de::IgnoredAny>,
}

#[derive(Serialize, Deserialize)]
struct QueueXml {
    #[serde(rename = "Id", default, skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    #[serde(rename = "Queue")]
    queue: String,
    #[serde(rename = "Event", default)]
    events: Vec<String>,
    #[serde(rename = "Filter", default, skip_serializing_if = "Option::is_none")]
    filter: Option<FilterXml>,
}

#[derive(Deserialize)]
struct OtherXml {
    #[serde(rename = "Topic", alias = "CloudFunction", default)]
    arn: String,
}

#[derive(Serialize, Deserialize, Default)]
struct FilterXml {
    #[serde(rename = "S3Key", default)]
    key: KeyFilterXml,
}

#[derive(Serialize, Deserialize, Default)]
struct KeyFilterXml {
    #[serde(rename = "FilterRule", default)]
    rules: Vec<FilterRuleXml>,
}

#[derive(Serialize, Deserialize)]
struct FilterRuleXml {
    #[serde(rename = "Name")]
    name: String,
    #[serde(rename = "Value")]
    value: String,
}

fn destination_error(arn: &str) -> S3Error {
    S3Error::invalid_argument(format!(
        "Unable to validate the following destination configurations: {arn} (configure the target on the server with CAIRN_NOTIFY_WEBHOOK_ENDPOINT_<ID> and name it arn:cairn:sqs::<ID>:webhook)"
    ))
}

fn parse(state: &S3State, text: &str) -> Result<Notification, S3Error> {
    let x: ConfigXml = xml::from_xml(text, "NotificationConfiguration")?;
    if x.event_bridge.is_some() {
        return Err(S3Error::not_implemented("EventBridgeConfiguration"));
    }
    if let Some(o) = x.topics.iter().chain(&x.functions).next() {
        return Err(destination_error(&o.arn));
    }
    let mut rules = Vec::new();
    for q in x.queues {
        if !state.notifier.has_target(&q.queue) {
            return Err(destination_error(&q.queue));
        }
        let (mut prefix, mut suffix) = (None, None);
        for f in q.filter.map(|f| f.key.rules).unwrap_or_default() {
            let slot = match f.name.to_ascii_lowercase().as_str() {
                "prefix" => &mut prefix,
                "suffix" => &mut suffix,
                _ => {
                    return Err(S3Error::invalid_argument(
                        "filter rule name must be either prefix or suffix",
                    ))
                }
            };
            if slot.replace(f.value).is_some() {
                return Err(S3Error::invalid_argument(format!(
                    "Cannot specify more than one {} rule in a filter.",
                    f.name.to_ascii_lowercase()
                )));
            }
        }
        rules.push(Rule {
            id: q
                .id
                .filter(|i| !i.is_empty())
                .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string()),
            arn: q.queue,
            events: q.events.into_iter().map(|e| e.trim().to_string()).collect(),
            prefix,
            suffix,
        });
    }
    let n = Notification { rules };
    n.validate().map_err(S3Error::invalid_argument)?;
    Ok(n)
}

pub async fn get(state: &S3State, ctx: &Ctx) -> Result<Response<Body>, S3Error> {
    let b = bucket(state, ctx).await?;
    let rules = b
        .config
        .notification
        .as_ref()
        .map(|n| n.rules.as_slice())
        .unwrap_or_default();
    xml_response(&ConfigXml {
        xmlns: NS,
        queues: rules
            .iter()
            .map(|r| QueueXml {
                id: Some(r.id.clone()),
                queue: r.arn.clone(),
                events: r.events.clone(),
                filter: (r.prefix.is_some() || r.suffix.is_some()).then(|| FilterXml {
                    key: KeyFilterXml {
                        rules: [("prefix", &r.prefix), ("suffix", &r.suffix)]
                            .into_iter()
                            .filter_map(|(name, v)| {
                                v.clone().map(|value| FilterRuleXml {
                                    name: name.to_string(),
                                    value,
                                })
                            })
                            .collect(),
                    },
                }),
            })
            .collect(),
        ..ConfigXml::default()
    })
}

/// An empty configuration removes the bucket's rules.
pub async fn put(state: &S3State, ctx: &Ctx, body: Body) -> Result<Response<Body>, S3Error> {
    put_config(
        state,
        ctx,
        body,
        MAX_BODY,
        |text| parse(state, text),
        |c, n| c.notification = (!n.rules.is_empty()).then_some(n),
    )
    .await
}
