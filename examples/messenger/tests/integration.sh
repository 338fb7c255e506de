#!/bin/bash
# The messenger's integration test: talks to a running auth (HTTP) and session (TCP)
# the way clients do. Needs bash (its /dev/tcp is the TCP client) and curl.
#
#   tests/integration.sh AUTH_URL SESSION_HOST SESSION_PORT
#   tests/integration.sh http://auth:9000 session 9001
#
# Every user name carries a random suffix, so the script can run again against the
# same database.
set -euo pipefail

auth=${1:?usage: integration.sh AUTH_URL SESSION_HOST SESSION_PORT}
session_host=${2:?usage: integration.sh AUTH_URL SESSION_HOST SESSION_PORT}
session_port=${3:?usage: integration.sh AUTH_URL SESSION_HOST SESSION_PORT}
suffix="$$-$RANDOM"
alice="alice-$suffix"
bob="bob-$suffix"
failures=0

pass() { echo "ok   - $1"; }
fail() { echo "FAIL - $1"; failures=$((failures + 1)); }

# expect_status NAME STATUS CURL_ARGS...: the HTTP status of a request.
expect_status() {
    local name=$1 want=$2
    shift 2
    local got
    got=$(curl -sS -o /tmp/body -w '%{http_code}' "$@") || got="curl failed"
    if [ "$got" = "$want" ]; then
        pass "$name ($got)"
    else
        fail "$name: want $want, got $got: $(cat /tmp/body 2>/dev/null)"
    fi
}

echo "# auth at $auth, session at $session_host:$session_port"

expect_status "health" 200 "$auth/health"
expect_status "first registration" 200 -X PUT -d "userid=$alice" -d password=secret-a "$auth/user"
expect_status "second registration of the same user" 409 -X PUT -d "userid=$alice" -d password=other "$auth/user"
expect_status "registration without password" 400 -X PUT -d "userid=$bob" "$auth/user"
expect_status "registration without userid" 400 -X PUT -d password=x "$auth/user"
expect_status "registration of bob" 200 -X PUT -d "userid=$bob" -d password=secret-b "$auth/user"

expect_status "token with a wrong password" 400 "$auth/token?userid=$alice&password=wrong"
expect_status "token for an unknown user" 404 "$auth/token?userid=nobody-$suffix&password=x"
expect_status "token for alice" 200 "$auth/token?userid=$alice&password=secret-a"
alice_token=$(cat /tmp/body)
expect_status "token for bob" 200 "$auth/token?userid=$bob&password=secret-b"
bob_token=$(cat /tmp/body)

expect_status "token verifies" 200 -X POST --data-binary "$alice_token" "$auth/token/$alice"
expect_status "token of another user is refused" 401 -X POST --data-binary "$bob_token" "$auth/token/$alice"
expect_status "malformed token is refused" 401 -X POST --data-binary 'not a token' "$auth/token/$alice"
expect_status "delete with a wrong password" 401 -X DELETE "$auth/user?userid=$bob&password=wrong"

# --- session: a message from alice reaches bob -------------------------------------
# expect_line FD NAME WANT: the next line on FD (10 s at most) is WANT.
expect_line() {
    local fd=$1 name=$2 want=$3 line=""
    if IFS= read -r -t 10 -u "$fd" line; then :; fi
    if [ "$line" = "$want" ]; then
        pass "$name"
    else
        fail "$name: want '$want', got '$line'"
    fi
}

exec 3<>"/dev/tcp/$session_host/$session_port"
exec 4<>"/dev/tcp/$session_host/$session_port"
expect_line 3 "alice is greeted" "HELLO session"
expect_line 4 "bob is greeted" "HELLO session"
printf 'SEND %s too early\n' "$bob" >&3
expect_line 3 "sending before AUTH is refused" "ERR not authenticated (send AUTH <userid> <token> first)"
printf 'AUTH %s %s\n' "$alice" "$bob_token" >&3
expect_line 3 "AUTH with someone else's token is refused" "ERR bad token"
printf 'AUTH %s %s\n' "$alice" "$alice_token" >&3
expect_line 3 "alice authenticates" "OK AUTH $alice"
printf 'AUTH %s %s\n' "$bob" "$bob_token" >&4
expect_line 4 "bob authenticates" "OK AUTH $bob"
printf '\001\002 garbage \377\n' >&3
expect_line 3 "garbage gets an error line" "ERR line is not UTF-8"
printf 'HELLO?\n' >&3
expect_line 3 "an unknown command gets an error line" "ERR unknown command (expected AUTH, SEND, PING or QUIT)"
printf 'SEND nobody-%s hi\n' "$suffix" >&3
expect_line 3 "an unknown recipient gets an error line" "ERR unknown recipient nobody-$suffix"
printf 'SEND %s hello bob, from alice\n' "$bob" >&3
expect_line 3 "alice's message is delivered" "OK SENT 1"
expect_line 4 "bob receives alice's message" "MSG $alice hello bob, from alice"

# A client that vanishes mid-line: nothing is delivered, the server keeps serving.
exec 5<>"/dev/tcp/$session_host/$session_port"
expect_line 5 "a third client is greeted" "HELLO session"
printf 'AUTH %s %s\nSEND %s half a mess' "$bob" "$bob_token" "$alice" >&5
expect_line 5 "the third client authenticates" "OK AUTH $bob"
exec 5>&-
printf 'PING\n' >&3
expect_line 3 "the session still answers after a client left mid-line" "PONG"
printf 'QUIT\n' >&4
expect_line 4 "bob quits" "BYE"
exec 3>&- 4>&-

expect_status "alice deletes her account" 200 -X DELETE "$auth/user?userid=$alice&password=secret-a"
expect_status "her token is gone with her" 401 -X POST --data-binary "$alice_token" "$auth/token/$alice"

if [ "$failures" -ne 0 ]; then
    echo "# $failures check(s) failed"
    exit 1
fi
echo "# all checks passed"
