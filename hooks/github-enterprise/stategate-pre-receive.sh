#!/bin/bash
# GitHub Enterprise Server pre-receive hook script.
#
# GHES runs pre-receive hooks inside a "pre-receive hook environment" (a chroot image the site
# administrator uploads), with the push's objects reachable through GIT_DIR and the quarantine
# variables, the pusher in GITHUB_USER_LOGIN and, for merges made through the pull request UI,
# GITHUB_PULL_REQUEST_* set. The environment image must contain `git`, `ssh-keygen` (for approval
# signatures) and the stategate binary at /usr/local/bin/stategate (see hooks/README.md).
#
# All pre-receive hooks of a repository share GHES' 5-second budget: stategate fails closed after
# its own --timeout (3 s here), leaving room for the others.
set -u
exec /usr/local/bin/stategate hook pre-receive --timeout 3 --audit-log /tmp/stategate-audit.log "$@"
