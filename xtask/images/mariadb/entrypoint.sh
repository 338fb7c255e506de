#!/bin/sh
# Entrypoint of gantry-test/mariadb: on first start, creates the data directory and
# applies MYSQL_ROOT_PASSWORD (or MYSQL_ALLOW_EMPTY_PASSWORD), MYSQL_DATABASE,
# MYSQL_USER and MYSQL_PASSWORD (MARIADB_* spellings too), the way the official image
# does; then runs the server in the foreground on 0.0.0.0:3306. Initialisation runs
# with networking off, so port 3306 only opens once the database is fully set up: a
# `tcp: 3306` readiness check means "ready for clients".
set -eu

# Extra arguments (`command: [--max-connections=50]`) go to the server.
if [ "$#" -eq 0 ] || [ "${1#-}" != "$1" ]; then
    set -- mariadbd "$@"
fi
if [ "$1" != mariadbd ] && [ "$1" != mysqld ]; then
    exec "$@"
fi

pick() { # pick NAME: $MARIADB_NAME, else $MYSQL_NAME, else empty
    eval "v=\${MARIADB_$1:-\${MYSQL_$1:-}}"
    printf '%s' "$v"
}
sql_string() { # a single-quoted SQL string literal
    printf "'%s'" "$(printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e "s/'/''/g")"
}
sql_name() { # a backquoted SQL identifier
    printf '`%s`' "$(printf '%s' "$1" | sed -e 's/`/``/g')"
}

datadir=/var/lib/mysql
mkdir -p "$datadir" /run/mysqld
chown mysql:mysql "$datadir" /run/mysqld

if [ ! -d "$datadir/mysql" ]; then
    root_password=$(pick ROOT_PASSWORD)
    allow_empty=$(pick ALLOW_EMPTY_PASSWORD)
    if [ -z "$root_password" ] && [ -z "$allow_empty" ]; then
        echo "entrypoint: set MYSQL_ROOT_PASSWORD (or MYSQL_ALLOW_EMPTY_PASSWORD=1)" >&2
        exit 1
    fi
    database=$(pick DATABASE)
    user=$(pick USER)
    password=$(pick PASSWORD)

    echo "entrypoint: initialising $datadir"
    mariadb-install-db --user=mysql --datadir="$datadir" --skip-test-db \
        --auth-root-authentication-method=normal >/dev/null

    {
        echo "FLUSH PRIVILEGES;"
        echo "DELETE FROM mysql.user WHERE user = '';"
        echo "ALTER USER 'root'@'localhost' IDENTIFIED BY $(sql_string "$root_password");"
        echo "CREATE USER 'root'@'%' IDENTIFIED BY $(sql_string "$root_password");"
        echo "GRANT ALL ON *.* TO 'root'@'%' WITH GRANT OPTION;"
        if [ -n "$database" ]; then
            echo "CREATE DATABASE IF NOT EXISTS $(sql_name "$database");"
        fi
        if [ -n "$user" ]; then
            echo "CREATE USER $(sql_string "$user")@'%' IDENTIFIED BY $(sql_string "$password");"
            if [ -n "$database" ]; then
                echo "GRANT ALL ON $(sql_name "$database").* TO $(sql_string "$user")@'%';"
            fi
        fi
        echo "FLUSH PRIVILEGES;"
    } | mariadbd --user=mysql --datadir="$datadir" --bootstrap --skip-networking \
        --log-warnings=0
    echo "entrypoint: initialised"
fi

shift
exec mariadbd --user=mysql --datadir="$datadir" --bind-address=0.0.0.0 --port=3306 \
    --skip-name-resolve "$@"
