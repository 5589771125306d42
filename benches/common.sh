# Shared by the bench scripts: `source "$here/benches/common.sh"`.

# Make directory $1 a repository with one commit of everything in it. Git's own configuration is
# kept out (GIT_CONFIG_NOSYSTEM, GIT_CONFIG_GLOBAL), so every machine commits the same way.
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
commit_all() {
    git -C "$1" init -q -b main
    git -C "$1" add -A
    git -C "$1" -c user.name=bench -c user.email=bench@example.com commit -qm bench
}
