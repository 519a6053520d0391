//! A message of its own in a channel, not about one issue: the summary a
//! mute leaves when it ends. Paced like every post to the channel.

use serde_json::json;

use super::SlackNotifier;
use super::message::Message;
use crate::notify::NotifyError;
use crate::policy::Destination;

impl SlackNotifier {
    pub(super) async fn post_summary(
        &self,
        channel: &str,
        text: &str,
        key: &str,
    ) -> Result<(), NotifyError> {
        let Some(destination) = self.policies.channels.get(channel).map(|c| &c.destination) else {
            return Err(NotifyError::Permanent(format!(
                "channel `{channel}` is no longer defined in the policy files"
            )));
        };
        self.wait_for_turn(channel)?;
        let message = Message {
            text: text.to_owned(),
            blocks: vec![json!({ "type": "section", "text": { "type": "mrkdwn", "text": text } })],
        };
        let posted = match destination {
            Destination::SlackChannel(target) => match &self.api {
                Some(api) => api
                    .post_message(target, &message, None, false, key)
                    .await
                    .map(|_| ()),
                None => {
                    return Err(NotifyError::Permanent(
                        "SLACK_BOT_TOKEN is not set and this channel posts with the bot token"
                            .to_owned(),
                    ));
                }
            },
            Destination::IncomingWebhook { env_var } => match self.webhooks.get(env_var) {
                Some(webhook) => webhook.post(&message).await,
                None => {
                    return Err(NotifyError::Permanent(format!(
                        "{env_var} was not set when labelwarden started"
                    )));
                }
            },
        };
        posted.map_err(|error| {
            if error.is_temporary() {
                NotifyError::Temporary {
                    message: error.to_string(),
                    retry_after: None,
                }
            } else {
                NotifyError::Refused {
                    channel: channel.to_owned(),
                    message: error.to_string(),
                }
            }
        })
    }
}
