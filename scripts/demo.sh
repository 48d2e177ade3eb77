#!/usr/bin/env bash
# The main job end to end on one machine: a throwaway Samba AD domain
# controller, a store with service accounts and teams, and real sync passes.
#
# Needs root (Samba binds an address it adds to lo) and a Rust toolchain;
# installs the Debian packages it needs when missing. Everything it makes
# lives in .demo/ and the DC is stopped when the script ends.
set -euo pipefail
cd "$(dirname "$0")/.."

readonly demo=$PWD/.demo
readonly ip=127.0.0.251
readonly teamsync=$PWD/target/debug/teamsync

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() {
    printf '$ teamsync'
    printf ' %q' "$@"
    printf '\n'
    "$teamsync" --config "$demo/config.yaml" "$@"
}

bash .ci/install-deps
step "building teamsync"
cargo build --quiet

if [[ -d $demo/dc ]]; then
    bash scripts/samba-dc.sh stop "$demo/dc" || true
fi
rm -rf "$demo"
mkdir -p "$demo"

step "provisioning a Samba AD DC for CORP.EXAMPLE.COM on $ip"
bash scripts/samba-dc.sh provision "$demo/dc" "$ip"
bash scripts/samba-dc.sh start-bg "$demo/dc"
trap 'bash scripts/samba-dc.sh stop "$demo/dc"' EXIT
eval "$(bash scripts/samba-dc.sh env "$demo/dc")"

ldap() {
    local tool=$1
    shift
    LDAPTLS_CACERT=$TEAMSYNC_DC_CA "$tool" -H "$TEAMSYNC_DC_URL" -x \
        -D "$TEAMSYNC_DC_ADMIN_DN" -y "$TEAMSYNC_DC_ADMIN_PASSWORD_FILE" "$@"
}

# The RID of an entry's objectSid: its last four bytes, little-endian.
rid_of() {
    ldap ldapsearch -LLL -o ldif-wrap=no -b "$1" -s base objectSid |
        sed -n 's/^objectSid:: //p' |
        python3 -c 'import base64,sys; b=base64.b64decode(sys.stdin.read()); print(int.from_bytes(b[-4:], "little"))'
}

step "seeding: robots, groups nested three deep, a custom primary group, a disabled account, a distribution group"
base=$TEAMSYNC_DC_BASE
ldap ldapadd >/dev/null <<EOF
dn: OU=Robots,$base
objectClass: organizationalUnit

dn: OU=Groups,$base
objectClass: organizationalUnit

dn: CN=svc-build,OU=Robots,$base
objectClass: user
sAMAccountName: svc-build
userPrincipalName: svc-build@corp.example.com
userAccountControl: 544

dn: CN=svc-deploy,OU=Robots,$base
objectClass: user
sAMAccountName: svc-deploy
userPrincipalName: svc-deploy@corp.example.com
userAccountControl: 544

dn: CN=svc-legacy,OU=Robots,$base
objectClass: user
sAMAccountName: svc-legacy
userAccountControl: 544

dn: CN=Build-Agents,OU=Groups,$base
objectClass: group
sAMAccountName: Build-Agents
groupType: -2147483646
member: CN=svc-build,OU=Robots,$base
member: CN=svc-legacy,OU=Robots,$base

dn: CN=Release-Engineers,OU=Groups,$base
objectClass: group
sAMAccountName: Release-Engineers
groupType: -2147483646
member: CN=Build-Agents,OU=Groups,$base

dn: CN=Deployers,OU=Groups,$base
objectClass: group
sAMAccountName: Deployers
groupType: -2147483646
member: CN=Release-Engineers,OU=Groups,$base

dn: CN=Production-Admins,OU=Groups,$base
objectClass: group
sAMAccountName: Production-Admins
groupType: -2147483646
member: CN=svc-deploy,OU=Robots,$base

dn: CN=Announcements,OU=Groups,$base
objectClass: group
sAMAccountName: Announcements
groupType: 2
member: CN=svc-deploy,OU=Robots,$base
EOF
# svc-deploy's primary group becomes Production-Admins: memberOf no longer
# lists it, tokenGroups still does.
ldap ldapmodify >/dev/null <<EOF
dn: CN=svc-deploy,OU=Robots,$base
changetype: modify
replace: primaryGroupID
primaryGroupID: $(rid_of "CN=Production-Admins,OU=Groups,$base")
EOF
echo "seeded OU=Robots (svc-build, svc-deploy, svc-legacy) and OU=Groups"

cat >"$demo/config.yaml" <<EOF
store:
  path: $demo/accounts.db
directory:
  url: $TEAMSYNC_DC_URL
  base_dn: $base
  bind:
    dn: $TEAMSYNC_DC_ADMIN_DN
    password_file: $TEAMSYNC_DC_ADMIN_PASSWORD_FILE
  tls:
    ca_file: $TEAMSYNC_DC_CA
sync:
  max_removals: 10
logging:
  level: warn
EOF

step "an admin sets up service accounts, logins and teams"
show account create build-robot --display-name "CI build agent"
show login add build-robot 'CORP\svc-build'
show account create deploy-robot
show login add deploy-robot svc-deploy@corp.example.com
show account create legacy-robot
show login add legacy-robot 'CORP\svc-legacy'
show team create Build
show team link Build 'CORP\Deployers'
show team create Production
show team link Production Production-Admins
show team create Newsletter
show team link Newsletter 'CORP\Announcements' || echo "(refused, as it should be)"
show team add-member Production build-robot
show check

step "a dry run shows the plan"
show --sync-now --dry-run

step "the first pass applies it"
show --sync-now
show team members Build
show team members Production

step "a second pass changes nothing"
show --sync-now

step "svc-legacy is disabled in AD; the next pass removes its directory teams"
ldap ldapmodify >/dev/null <<EOF
dn: CN=svc-legacy,OU=Robots,$base
changetype: modify
replace: userAccountControl
userAccountControl: 546
EOF
show --sync-now --json

step "API keys work for service accounts"
key=$("$teamsync" --config "$demo/config.yaml" apikey create deploy-robot --purpose demo 2>/dev/null)
echo "created a key ($(echo "$key" | cut -c1-8)...)"
echo "$key" | show apikey verify

step "done: the store is $demo/accounts.db (see docs/schema.md); the DC stops now"
