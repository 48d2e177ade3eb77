#!/usr/bin/env bash
# Runs a throwaway OpenLDAP slapd (suffix dc=example,dc=org) for teamsync's
# generic-LDAP integration tests and benchmarks. The single source of truth
# for how a test slapd is provisioned, started, probed and stopped;
# tests/common/slapd.rs drives it. Mirrors scripts/samba-dc.sh.
#
# Usage:
#   slapd.sh provision DIR IP      write a fresh slapd into DIR (absent or empty), IP = 127.0.0.N
#   slapd.sh start DIR             exec slapd in the foreground (caller owns and backgrounds it)
#   slapd.sh start-bg DIR [SECS]   start slapd as a daemon, return once LDAPS answers
#   slapd.sh wait DIR [SECS]       poll LDAPS rootDSE until it answers (default 30 s)
#   slapd.sh probe DIR             one LDAPS rootDSE probe; exit 0 if it answered
#   slapd.sh stop DIR              stop the slapd named in DIR/run/slapd.pid, wait for it to exit
#   slapd.sh bulk DIR LDIF_FILE    load LDIF offline with slapadd -q (slapd must be stopped)
#   slapd.sh env DIR               print shell-sourceable TEAMSYNC_LDAP_* lines
#
# Layout of DIR after provisioning:
#   slapd.conf (0600: holds the rootpw hash)  data/ (mdb)  run/slapd.pid  log/
#   tls/ca.pem tls/server.pem tls/server-key.pem tls/other-ca.pem
#   ip  admin-password (0600, no trailing newline: usable with ldapsearch -y)
#
# The server: plain slapd.conf (no cn=config), back_mdb, overlays syncprov,
# memberof (memberof-refint TRUE), refint (member, uniqueMember) and ppolicy
# (default policy cn=default,ou=policies with pwdLockout TRUE, so an account
# the rootdn locks with pwdAccountLockedTime: 000001010000Z cannot bind). Size limits: none for the rootdn;
# 500 entries per plain search for everyone else, with paged searches
# unlimited in total (so a client that pages sees everything, one that
# does not gets sizeLimitExceeded past 500). Access: authenticated users read
# everything but userPassword; anonymous binds see only the rootDSE and
# the schema.
#
# TEAMSYNC_SLAPD_DEBUG=LEVEL (e.g. stats, or -1) makes `start` log at that
# slapd debug level to its stdout; the default 0 keeps it quiet.
set -euo pipefail

readonly BASE_DN=dc=example,dc=org
readonly ADMIN_DN="cn=admin,${BASE_DN}"
readonly PEOPLE_DN="ou=people,${BASE_DN}"
readonly GROUPS_DN="ou=groups,${BASE_DN}"
readonly FQDN=ldap1.example.org
# The single value an "empty" groupOfNames/groupOfUniqueNames holds (both
# require at least one member); names no entry. refint also puts it in when
# it removes a group's last member. tests/common/slapd.rs knows it too.
readonly EMPTY_MEMBER="cn=nobody,${BASE_DN}"
# The default password policy. Without one whose pwdLockout is TRUE, slapd
# records pwdAccountLockedTime but still lets the account bind.
readonly POLICIES_DN="ou=policies,${BASE_DN}"
readonly POLICY_DN="cn=default,${POLICIES_DN}"
readonly SCHEMA_DIR=/etc/ldap/schema
readonly MODULE_DIR=/usr/lib/ldap
# Plain (non-paged) searches by anyone but the rootdn stop after this many entries.
readonly SIZE_LIMIT=500

die() {
    echo "slapd.sh: $*" >&2
    exit 1
}

usage() {
    sed -n '/^# Usage:/,/^# Layout/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
    exit 2
}

need() {
    local tool
    for tool in "$@"; do
        command -v "$tool" >/dev/null 2>&1 ||
            die "required tool '$tool' not found in PATH (run .ci/install-deps)"
    done
}

# slapd and slapadd live in /usr/sbin, which a non-login PATH may lack.
PATH=$PATH:/usr/sbin:/sbin

# Absolute path of DIR (which must exist).
absdir() {
    [[ -d $1 ]] || die "directory '$1' does not exist"
    (cd "$1" && pwd -P)
}

server_ip() {
    [[ -s $1/ip ]] || die "'$1' is not a provisioned slapd directory (no $1/ip)"
    cat "$1/ip"
}

urls() {
    local ip=$1
    echo "ldap://$ip:389/ ldaps://$ip:636/"
}

# Milliseconds since the epoch, for deadlines (bash 5's EPOCHREALTIME, no fork).
now_ms() {
    local t=${EPOCHREALTIME/[.,]/}
    echo $((t / 1000))
}

probe() {
    local dir=$1 ip
    ip=$(server_ip "$dir")
    # LDAPTLS_REQCERT=demand overrides a permissive ldap.conf: readiness means
    # "answers LDAPS with the certificate our CA signed".
    LDAPTLS_CACERT="$dir/tls/ca.pem" LDAPTLS_REQCERT=demand \
        ldapsearch -H "ldaps://$ip" -x -o nettimeout=2 -LLL -s base -b '' \
        namingContexts >/dev/null 2>&1
}

wait_ready() {
    local dir=$1 timeout=${2:-30} deadline
    deadline=$(($(now_ms) + timeout * 1000))
    until probe "$dir"; do
        if (($(now_ms) >= deadline)); then
            die "slapd in $dir did not answer LDAPS on ldaps://$(server_ip "$dir") within ${timeout}s (see $dir/log/)"
        fi
        sleep 0.1
    done
}

# The pid in DIR/run/slapd.pid if that process is a live slapd, else nothing.
running_pid() {
    local pidfile=$1/run/slapd.pid pid
    [[ -s $pidfile ]] || return 0
    pid=$(tr -dc 0-9 <"$pidfile")
    [[ -n $pid ]] || return 0
    # Pid files go stale: only a live (non-zombie) slapd counts.
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) == slapd ]] || return 0
    [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) != Z ]] || return 0
    echo "$pid"
}

# Issue certificates: a test CA, a server certificate for FQDN and IP signed
# by it, and a second, unrelated CA for "untrusted CA" tests. Same recipe as
# scripts/samba-dc.sh (ECDSA P-256: generated in milliseconds).
make_tls() {
    local tls=$1 ip=$2
    mkdir -p "$tls"
    (
        cd "$tls"
        umask 077
        for ca in ca other-ca; do
            openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
                -sha256 -days 3650 \
                -keyout "$ca-key.pem" -out "$ca.pem" \
                -subj "/O=teamsync tests/CN=teamsync slapd $ca $(date +%s%N)" \
                -addext "basicConstraints=critical,CA:TRUE" \
                -addext "keyUsage=critical,keyCertSign,cRLSign" \
                -addext "subjectKeyIdentifier=hash" 2>/dev/null
        done
        cat >server.ext <<EOF
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
subjectAltName=DNS:$FQDN,IP:$ip
EOF
        openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -sha256 \
            -keyout server-key.pem -out server.csr -subj "/CN=$FQDN" 2>/dev/null
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem \
            -CAcreateserial -days 3650 -sha256 -extfile server.ext \
            -out server.pem 2>/dev/null
        rm -f server.csr server.ext ca.srl
        chmod 600 ./*-key.pem
        chmod 644 ca.pem other-ca.pem server.pem
    )
}

write_conf() {
    local dir=$1 hash=$2 schema
    {
        echo "# Generated by scripts/slapd.sh provision; a throwaway test server."
        for schema in core cosine inetorgperson nis; do
            echo "include $SCHEMA_DIR/$schema.schema"
        done
        cat <<EOF

modulepath $MODULE_DIR
moduleload back_mdb
moduleload memberof
moduleload refint
moduleload syncprov
moduleload ppolicy

pidfile $dir/run/slapd.pid
argsfile $dir/run/slapd.args
loglevel none

TLSCACertificateFile $dir/tls/ca.pem
TLSCertificateFile $dir/tls/server.pem
TLSCertificateKeyFile $dir/tls/server-key.pem
TLSVerifyClient never

# Frontend ACLs (apply after the database's): anyone may read the rootDSE
# and the schema, which is what clients probe before binding.
access to dn.base="" by * read
access to dn.base="cn=Subschema" by * read

database mdb
suffix "$BASE_DN"
rootdn "$ADMIN_DN"
rootpw $hash
directory $dir/data
# The map is sparse: room for 100,000-user benchmarks without growing it.
maxsize 4294967296
# Throwaway data: no fsync per write.
dbnosync

index objectClass eq
index uid eq
index cn eq
index member eq
index uniqueMember eq
index memberUid eq
index entryUUID eq
index entryCSN eq

# The rootdn is never limited; everyone else gets $SIZE_LIMIT entries per
# plain search (then sizeLimitExceeded), while a paged search (RFC 2696)
# pages through everything, with any page size (size.pr unset: no
# per-page cap; setting one makes larger page sizes fail with code 11).
limits dn.exact="$ADMIN_DN" size=unlimited time=unlimited
limits * size.soft=$SIZE_LIMIT size.hard=$SIZE_LIMIT size.prtotal=unlimited time.soft=3600 time.hard=3600

access to attrs=userPassword
    by self write
    by anonymous auth
    by * none
access to *
    by users read
    by * none

overlay syncprov
syncprov-checkpoint 100 5
syncprov-sessionlog 10000

overlay memberof
memberof-group-oc groupOfNames
memberof-member-ad member
memberof-memberof-ad memberOf
memberof-refint TRUE
memberof-dangling ignore

overlay refint
refint_attributes member uniqueMember
refint_nothing "$EMPTY_MEMBER"

overlay ppolicy
ppolicy_default "$POLICY_DN"
EOF
    } >"$dir/slapd.conf"
}

base_ldif() {
    cat <<EOF
dn: $BASE_DN
objectClass: top
objectClass: dcObject
objectClass: organization
dc: example
o: Example Org

dn: $PEOPLE_DN
objectClass: top
objectClass: organizationalUnit
ou: people

dn: $GROUPS_DN
objectClass: top
objectClass: organizationalUnit
ou: groups

dn: $POLICIES_DN
objectClass: top
objectClass: organizationalUnit
ou: policies

# Only what makes pwdAccountLockedTime: 000001010000Z refuse binds
# (pwdLockout). pwdMaxFailure 0: failed binds never lock an account.
dn: $POLICY_DN
objectClass: top
objectClass: device
objectClass: pwdPolicy
cn: default
pwdAttribute: userPassword
pwdLockout: TRUE
pwdMaxFailure: 0
EOF
}

cmd_provision() {
    (($# == 2)) || usage
    local dir=$1 ip=$2
    need slapd slapadd slappasswd slaptest openssl ldapsearch
    if ! [[ $ip =~ ^127\.0\.0\.([0-9]{1,3})$ ]] || ((BASH_REMATCH[1] < 2 || BASH_REMATCH[1] > 254)); then
        die "IP must be a loopback address 127.0.0.N (2 <= N <= 254), got '$ip'"
    fi
    if [[ -e $dir ]]; then
        [[ -d $dir ]] || die "'$dir' exists and is not a directory"
        [[ -z $(ls -A "$dir") ]] || die "'$dir' is not empty; provision needs a fresh directory"
    fi
    mkdir -p "$dir"
    dir=$(absdir "$dir")
    # Unlike Samba, slapd binds any 127.0.0.0/8 address without `ip addr add`:
    # Linux routes the whole block to lo.

    mkdir -p "$dir/run" "$dir/log" "$dir/data"
    printf '%s' "$ip" >"$dir/ip"

    # Random password without a trailing newline, so `ldapsearch -y FILE`
    # uses it as is; hashed from the file (-T) so it never shows in argv.
    (
        umask 077
        printf 'Ts-%s-Q9' "$(openssl rand -hex 12)" >"$dir/admin-password"
    )
    chmod 600 "$dir/admin-password"
    local hash
    hash=$(slappasswd -T "$dir/admin-password" 2>/dev/null) || die "slappasswd failed"

    make_tls "$dir/tls" "$ip"

    (
        umask 077
        write_conf "$dir" "$hash"
    )
    local out
    out=$(slaptest -u -f "$dir/slapd.conf" 2>&1) || {
        printf '%s\n' "$out" >&2
        die "slaptest rejected $dir/slapd.conf"
    }
    # -w writes contextCSN on the suffix, so syncrepl-style readers see one
    # from the start.
    out=$(base_ldif | slapadd -q -w -f "$dir/slapd.conf" 2>&1) || {
        printf '%s\n' "$out" >&2
        die "slapadd of the base entries failed"
    }
}

cmd_start() {
    (($# == 1)) || usage
    local dir ip
    dir=$(absdir "$1")
    ip=$(server_ip "$dir")
    need slapd
    # -d: stay in the foreground (any -d does; level 0 logs nothing), so
    # killing this process (or PR_SET_PDEATHSIG, which exec preserves) takes
    # the server down.
    exec slapd -d "${TEAMSYNC_SLAPD_DEBUG:-0}" -f "$dir/slapd.conf" -h "$(urls "$ip")"
}

cmd_start_bg() {
    (($# == 1 || $# == 2)) || usage
    [[ ${2:-30} =~ ^[0-9]+$ ]] || die "TIMEOUT_SECS must be a whole number, got '$2'"
    local dir ip
    dir=$(absdir "$1")
    ip=$(server_ip "$dir")
    need slapd ldapsearch
    if probe "$dir"; then
        die "an LDAP server already answers on ldaps://$ip"
    fi
    # Without -d slapd forks into the background once its listeners are up.
    slapd -f "$dir/slapd.conf" -h "$(urls "$ip")" </dev/null >>"$dir/log/slapd.out" 2>&1 ||
        die "slapd failed to start (see $dir/log/slapd.out; slaptest -f $dir/slapd.conf)"
    wait_ready "$dir" "${2:-30}"
}

cmd_wait() {
    (($# == 1 || $# == 2)) || usage
    [[ ${2:-30} =~ ^[0-9]+$ ]] || die "TIMEOUT_SECS must be a whole number, got '$2'"
    need ldapsearch
    wait_ready "$(absdir "$1")" "${2:-30}"
}

cmd_probe() {
    (($# == 1)) || usage
    probe "$(absdir "$1")"
}

cmd_stop() {
    (($# == 1)) || usage
    local dir pid deadline
    dir=$(absdir "$1")
    pid=$(running_pid "$dir")
    [[ -n $pid ]] || {
        echo "slapd.sh: no live slapd in $dir/run/slapd.pid; nothing to stop" >&2
        return 0
    }
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$(($(now_ms) + 10000))
    # A zombie (exited, not yet reaped by its parent) counts as stopped.
    while [[ -e /proc/$pid && $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) != Z ]]; do
        if (($(now_ms) >= deadline)); then
            echo "slapd.sh: pid $pid ignored SIGTERM for 10 s; sending SIGKILL" >&2
            kill -KILL "$pid" 2>/dev/null || true
            deadline=$(($(now_ms) + 5000))
        fi
        sleep 0.1
    done
}

cmd_bulk() {
    (($# == 2)) || usage
    local dir ldif=$2 pid
    dir=$(absdir "$1")
    server_ip "$dir" >/dev/null
    need slapadd
    [[ -f $ldif && -r $ldif ]] || die "cannot read LDIF file '$ldif'"
    pid=$(running_pid "$dir")
    [[ -z $pid ]] || die "slapd (pid $pid) runs on $dir; stop it before a bulk load"
    # -q: no consistency checks, the fast path; -w: bring contextCSN up to
    # date. slapadd bypasses the overlays: memberof does not add memberOf
    # values and refint checks nothing, so the LDIF must carry memberOf
    # itself if the test needs it.
    slapadd -q -w -f "$dir/slapd.conf" -l "$ldif" ||
        die "slapadd -l $ldif into $dir failed"
}

cmd_env() {
    (($# == 1)) || usage
    local dir ip
    dir=$(absdir "$1")
    ip=$(server_ip "$dir")
    cat <<EOF
export TEAMSYNC_LDAP_DIR='$dir'
export TEAMSYNC_LDAP_IP='$ip'
export TEAMSYNC_LDAP_URL='ldaps://$ip'
export TEAMSYNC_LDAP_STARTTLS_URL='ldap://$ip'
export TEAMSYNC_LDAP_HOSTNAME='$FQDN'
export TEAMSYNC_LDAP_BASE='$BASE_DN'
export TEAMSYNC_LDAP_CA='$dir/tls/ca.pem'
export TEAMSYNC_LDAP_OTHER_CA='$dir/tls/other-ca.pem'
export TEAMSYNC_LDAP_ADMIN_DN='$ADMIN_DN'
export TEAMSYNC_LDAP_ADMIN_PASSWORD_FILE='$dir/admin-password'
export TEAMSYNC_LDAP_PEOPLE_DN='$PEOPLE_DN'
export TEAMSYNC_LDAP_GROUPS_DN='$GROUPS_DN'
EOF
}

main() {
    (($# >= 1)) || usage
    local cmd=$1
    shift
    case $cmd in
    provision) cmd_provision "$@" ;;
    start) cmd_start "$@" ;;
    start-bg) cmd_start_bg "$@" ;;
    wait) cmd_wait "$@" ;;
    probe) cmd_probe "$@" ;;
    stop) cmd_stop "$@" ;;
    bulk) cmd_bulk "$@" ;;
    env) cmd_env "$@" ;;
    -h | --help | help) usage ;;
    *) die "unknown subcommand '$cmd' (try --help)" ;;
    esac
}

main "$@"
