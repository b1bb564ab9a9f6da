# imapsieve: a message arrived in Junk (moved, copied or appended by the
# user): teach mailwarden that it is spam. See 90-mailwarden-imapsieve.conf.
require ["vnd.dovecot.pipe", "copy", "imapsieve"];

pipe :copy "mailwarden-learn" ["spam"];
