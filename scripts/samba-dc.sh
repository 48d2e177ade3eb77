#!/usr/bin/env bash
# Runs a throwaway Samba AD domain controller (realm CORP.EXAMPLE.COM) for
# teamsync's integration tests and demo. The single source of truth for how a
# test DC is provisioned, started, probed and stopped; tests/common/samba.rs
# drives it.
#
# Usage:
#   samba-dc.sh provision DIR IP      provision a fresh DC into DIR (absent or empty), IP = 127.0.0.N
#   samba-dc.sh start DIR             exec samba in the foreground (caller owns and backgrounds it)
#   samba-dc.sh start-bg DIR [SECS]   start samba as a daemon, return once LDAPS answers
#   samba-dc.sh wait DIR [SECS]       poll LDAPS rootDSE until it answers (default 60 s)
#   samba-dc.sh probe DIR             one LDAPS rootDSE probe; exit 0 if it answered
#   samba-dc.sh stop DIR              stop the DC named in DIR/run/samba.pid, wait for it to exit
#   samba-dc.sh env DIR               print shell-sourceable TEAMSYNC_DC_* lines
#
# Layout of DIR after provisioning:
#   etc/smb.conf  private/  state/  run/samba.pid  log/
#   tls/ca.pem tls/server.pem tls/server-key.pem tls/other-ca.pem
#   ip  admin-password (0600, no trailing newline: usable with ldapsearch -y)  krb5.conf
set -euo pipefail

readonly REALM=CORP.EXAMPLE.COM
readonly DOMAIN=CORP
readonly HOST=dc1
readonly FQDN=dc1.corp.example.com
readonly BASE_DN=DC=corp,DC=example,DC=com
readonly ADMIN_DN="CN=Administrator,CN=Users,${BASE_DN}"

# A throwaway DC needs no durability: skipping fsync in tdb/ldb makes
# provisioning about 2.5 s faster and writes cheaper.
export TDB_NO_FSYNC=1

die() {
    echo "samba-dc.sh: $*" >&2
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

# Absolute path of DIR (which must exist).
absdir() {
    [[ -d $1 ]] || die "directory '$1' does not exist"
    (cd "$1" && pwd -P)
}

dc_ip() {
    [[ -s $1/ip ]] || die "'$1' is not a provisioned DC directory (no $1/ip)"
    cat "$1/ip"
}

# Milliseconds since the epoch, for deadlines (bash 5's EPOCHREALTIME, no fork).
now_ms() {
    local t=${EPOCHREALTIME/[.,]/}
    echo $((t / 1000))
}

probe() {
    local dir=$1 ip
    ip=$(dc_ip "$dir")
    # LDAPTLS_REQCERT=demand overrides a permissive ldap.conf: readiness means
    # "answers LDAPS with the certificate our CA signed".
    LDAPTLS_CACERT="$dir/tls/ca.pem" LDAPTLS_REQCERT=demand \
        ldapsearch -H "ldaps://$ip" -x -o nettimeout=2 -LLL -s base -b '' \
        defaultNamingContext >/dev/null 2>&1
}

wait_ready() {
    local dir=$1 timeout=${2:-60} deadline
    deadline=$(($(now_ms) + timeout * 1000))
    until probe "$dir"; do
        if (($(now_ms) >= deadline)); then
            die "DC in $dir did not answer LDAPS on ldaps://$(dc_ip "$dir") within ${timeout}s (see $dir/log/)"
        fi
        sleep 0.1
    done
}

# Issue certificates: a test CA, a server certificate for FQDN and IP signed
# by it, and a second, unrelated CA for "untrusted CA" tests. Samba's own
# auto-generated certificate has no subjectAltName, which rustls refuses.
# ECDSA P-256 keys: generated in milliseconds (RSA took ~1 s for three).
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
                -subj "/O=teamsync tests/CN=teamsync $ca $(date +%s%N)" \
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
subjectAltName=DNS:$FQDN,DNS:$HOST,IP:$ip
EOF
        openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -sha256 \
            -keyout server-key.pem -out server.csr -subj "/CN=$FQDN" 2>/dev/null
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem \
            -CAcreateserial -days 3650 -sha256 -extfile server.ext \
            -out server.pem 2>/dev/null
        rm -f server.csr server.ext ca.srl
        # Samba refuses a key file readable by others; the certificates are public.
        chmod 600 ./*-key.pem
        chmod 644 ca.pem other-ca.pem server.pem
    )
}

cmd_provision() {
    (($# == 2)) || usage
    local dir=$1 ip=$2
    need samba-tool samba openssl ip ldapsearch
    [[ $ip =~ ^127\.0\.0\.([0-9]{1,3})$ ]] && ((BASH_REMATCH[1] >= 2 && BASH_REMATCH[1] <= 254)) ||
        die "IP must be a loopback address 127.0.0.N (2 <= N <= 254), got '$ip'"
    if [[ -e $dir ]]; then
        [[ -d $dir ]] || die "'$dir' exists and is not a directory"
        [[ -z $(ls -A "$dir") ]] || die "'$dir' is not empty; provision needs a fresh directory"
    fi
    mkdir -p "$dir"
    dir=$(absdir "$dir")

    # Samba binds only addresses an interface holds ("no network interfaces
    # found" otherwise); slapd would not care, Samba does.
    local out
    if ! out=$(ip addr add "$ip/32" dev lo 2>&1); then
        [[ $out == *"File exists"* || $out == *"already assigned"* ]] ||
            die "ip addr add $ip/32 dev lo failed: $out"
    fi

    mkdir -p "$dir/run" "$dir/log"
    printf '%s' "$ip" >"$dir/ip"

    # Random strong password that also meets the default complexity rules
    # (upper, lower, digit, symbol), written without a trailing newline so
    # `ldapsearch -y FILE` uses it as is.
    (
        umask 077
        printf 'Ts-%s-Q9' "$(openssl rand -hex 12)" >"$dir/admin-password"
    )
    chmod 600 "$dir/admin-password"

    make_tls "$dir/tls" "$ip"

    # Options passed as --option land in the generated smb.conf. Spaces
    # around '=' are not allowed in --option values.
    if ! out=$(samba-tool domain provision \
        --targetdir="$dir" --realm="$REALM" --domain="$DOMAIN" \
        --server-role=dc --dns-backend=NONE --host-name="$HOST" \
        --adminpass="$(cat "$dir/admin-password")" \
        --option="interfaces=$ip" \
        --option="bind interfaces only=yes" \
        --option="server services=ldap, kdc" \
        --option="pid directory=$dir/run" \
        --option="log file=$dir/log/log.%m" \
        --option="tls enabled=yes" \
        --option="tls keyfile=$dir/tls/server-key.pem" \
        --option="tls certfile=$dir/tls/server.pem" \
        --option="tls cafile=$dir/tls/ca.pem" 2>&1); then
        printf '%s\n' "$out" >&2
        die "samba-tool domain provision failed"
    fi
    printf '%s\n' "$out" >"$dir/log/provision.log"

    local conf=$dir/etc/smb.conf
    local -a offline=(-H "$dir/private/sam.ldb" -s "$conf")

    # Tests set short passwords on purpose.
    samba-tool domain passwordsettings set "${offline[@]}" \
        --complexity=off --min-pwd-length=1 --history-length=0 \
        --min-pwd-age=0 --max-pwd-age=0 >>"$dir/log/provision.log" 2>&1 ||
        die "samba-tool domain passwordsettings set failed (see $dir/log/provision.log)"

    # Without DNS the DC account may lack the ldap/ SPN that Kerberos binds need.
    if ! samba-tool spn add "${offline[@]}" "ldap/$FQDN" 'DC1$' >>"$dir/log/provision.log" 2>&1; then
        samba-tool spn list "${offline[@]}" 'DC1$' 2>/dev/null | grep -qi "ldap/$FQDN\$" ||
            die "samba-tool spn add ldap/$FQDN failed (see $dir/log/provision.log)"
    fi

    # The generated private/krb5.conf relies on DNS to find the KDC; this
    # one names it directly, for KRB5_CONFIG=DIR/krb5.conf.
    cat >"$dir/krb5.conf" <<EOF
[libdefaults]
	default_realm = $REALM
	dns_lookup_realm = false
	dns_lookup_kdc = false
	rdns = false

[realms]
	$REALM = {
		kdc = $ip
		admin_server = $ip
		default_domain = corp.example.com
	}

[domain_realm]
	.corp.example.com = $REALM
	corp.example.com = $REALM
EOF
}

cmd_start() {
    (($# == 1)) || usage
    local dir
    dir=$(absdir "$1")
    dc_ip "$dir" >/dev/null
    need samba
    # -i: no fork, no daemon, log to stdout; -M single: one process holds the
    # LDAP server and the KDC, so killing it (or PR_SET_PDEATHSIG, which exec
    # preserves) takes the whole DC down.
    exec samba -i -M single -s "$dir/etc/smb.conf"
}

cmd_start_bg() {
    (($# == 1 || $# == 2)) || usage
    local dir
    dir=$(absdir "$1")
    dc_ip "$dir" >/dev/null
    need samba ldapsearch
    if probe "$dir"; then
        die "a DC already answers on ldaps://$(dc_ip "$dir")"
    fi
    samba -D -M single -s "$dir/etc/smb.conf" </dev/null >>"$dir/log/samba.out" 2>&1 ||
        die "samba -D failed (see $dir/log/)"
    wait_ready "$dir" "${2:-60}"
}

cmd_wait() {
    (($# == 1 || $# == 2)) || usage
    [[ ${2:-60} =~ ^[0-9]+$ ]] || die "TIMEOUT_SECS must be a whole number, got '$2'"
    need ldapsearch
    wait_ready "$(absdir "$1")" "${2:-60}"
}

cmd_probe() {
    (($# == 1)) || usage
    probe "$(absdir "$1")"
}

cmd_stop() {
    (($# == 1)) || usage
    local dir pidfile pid deadline
    dir=$(absdir "$1")
    pidfile=$dir/run/samba.pid
    [[ -s $pidfile ]] || {
        echo "samba-dc.sh: no $pidfile; nothing to stop" >&2
        return 0
    }
    pid=$(tr -dc 0-9 <"$pidfile")
    [[ -n $pid ]] || die "$pidfile holds no pid"
    # Only signal the pid if it really is a samba process (pid files go stale).
    if [[ $(cat "/proc/$pid/comm" 2>/dev/null) != samba* ]]; then
        echo "samba-dc.sh: pid $pid from $pidfile is not running samba; nothing to stop" >&2
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$(($(now_ms) + 10000))
    # A zombie (exited, not yet reaped by its parent) counts as stopped.
    while [[ -e /proc/$pid && $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) != Z ]]; do
        if (($(now_ms) >= deadline)); then
            echo "samba-dc.sh: pid $pid ignored SIGTERM for 10 s; sending SIGKILL" >&2
            kill -KILL "$pid" 2>/dev/null || true
            deadline=$(($(now_ms) + 5000))
        fi
        sleep 0.1
    done
}

cmd_env() {
    (($# == 1)) || usage
    local dir ip
    dir=$(absdir "$1")
    ip=$(dc_ip "$dir")
    cat <<EOF
export TEAMSYNC_DC_DIR='$dir'
export TEAMSYNC_DC_IP='$ip'
export TEAMSYNC_DC_URL='ldaps://$ip'
export TEAMSYNC_DC_STARTTLS_URL='ldap://$ip'
export TEAMSYNC_DC_HOSTNAME='$FQDN'
export TEAMSYNC_DC_BASE='$BASE_DN'
export TEAMSYNC_DC_CA='$dir/tls/ca.pem'
export TEAMSYNC_DC_OTHER_CA='$dir/tls/other-ca.pem'
export TEAMSYNC_DC_ADMIN_DN='$ADMIN_DN'
export TEAMSYNC_DC_ADMIN_PASSWORD_FILE='$dir/admin-password'
export TEAMSYNC_DC_KRB5_CONF='$dir/krb5.conf'
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
    env) cmd_env "$@" ;;
    -h | --help | help) usage ;;
    *) die "unknown subcommand '$cmd' (try --help)" ;;
    esac
}

main "$@"
