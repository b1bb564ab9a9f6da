# imapsieve: a message left Junk: teach mailwarden that it is ham, unless
# the user only threw it away (Trash says nothing about the message). See
# 90-mailwarden-imapsieve.conf.
require ["vnd.dovecot.pipe", "copy", "imapsieve", "environment", "variables"];

if environment :matches "imap.mailbox" "*" {
  set "mailbox" "${1}";
}
if string :is "${mailbox}" "Trash" {
  stop;
}
pipe :copy "mailwarden-learn" ["ham"];
