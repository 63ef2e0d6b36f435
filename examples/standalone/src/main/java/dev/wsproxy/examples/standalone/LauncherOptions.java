package dev.wsproxy.examples.standalone;

import static java.nio.charset.StandardCharsets.UTF_8;
import static java.util.Objects.requireNonNull;

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.AccessDeniedException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.OptionalInt;
import java.util.function.Supplier;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.jspecify.annotations.Nullable;

import dev.wsproxy.Backend;
import dev.wsproxy.BackendSelector;
import dev.wsproxy.BackendTls;
import dev.wsproxy.HashKeys;
import dev.wsproxy.OriginValidator;
import dev.wsproxy.ProxyBuilder;
import dev.wsproxy.ServerTls;
import dev.wsproxy.TimeoutPolicy;

/**
 * The launcher's command line, parsed and checked: no network, and no I/O but the backend files a {@code --route}
 * names ({@link #readBackendFile}). {@link #parse(String...)} throws a
 * {@link UsageException} naming the flag and the expected form; {@link #toProxyBuilder()} turns valid options into a
 * {@link ProxyBuilder}.
 *
 * <p>Flags take their value as the next argument ({@code --listen 0.0.0.0:8080}) or after {@code =}
 * ({@code --listen=0.0.0.0:8080}); {@code --insecure-backend-tls} takes none. Passwords are never flags: a
 * {@code --*-password-env} flag names the environment variable that holds one. Repeatable flags: {@code --route}, {@code --allow-origin} and
 * {@code --trusted-proxy}; the others may be given once. Immutable.
 */
final class LauncherOptions {

    /** How often a {@code ;resolve} route resolves its name again without {@code --dns-refresh}. */
    static final Duration DEFAULT_DNS_REFRESH = Duration.ofSeconds(10);

    /** The address used without {@code --listen}. */
    static final String DEFAULT_LISTEN = ProxyBuilder.DEFAULT_HOST + ":" + ProxyBuilder.DEFAULT_PORT;

    /** The default {@code --balance} strategy when every backend has the default weight. */
    static final String ROUND_ROBIN = "round-robin";

    /** The default {@code --balance} strategy when a backend has a {@code ;weight=N} other than 1, as in nginx. */
    static final String WEIGHTED_ROUND_ROBIN = "weighted-round-robin";

    static final String LISTEN_FORM = "HOST:PORT, like 127.0.0.1:8080, 0.0.0.0:0 or [::1]:8080";
    static final String ROUTE_FORM = "PATH=URL[,URL...] or PATH=@FILE, like /ws/=ws://127.0.0.1:3000";
    static final String BACKEND_FILE_FORM = "one URL per line, like ws://10.0.0.5:3000;weight=2, # for a comment";

    /** The largest backend file read: a list of backends is a few kilobytes, and a mistaken path is refused fast. */
    static final int MAX_BACKEND_FILE_BYTES = 1 << 20;
    static final String BALANCE_FORM = "round-robin, weighted-round-robin, random, two-choices, least-connections,"
            + " ip-hash, hash:header:NAME, hash:cookie:NAME or hash:query:NAME";
    static final String URL_FORM = "a ws://, wss://, http:// or https:// URL with a host, like ws://127.0.0.1:3000";
    static final String BACKEND_OPTION_FORM = ";weight=N (N from 1 to 1000) or ;backup after a URL, each once";
    static final String RESOLVE_FORM = ";resolve alone, after a route's only URL, whose host is a DNS name";
    static final String ORIGIN_FORM = "scheme://host[:port], like https://app.example.com";
    static final String DURATION_FORM = "a duration like 500ms, 5s, 2m or 1h";
    static final String SIZE_FORM = "a positive number of bytes, like 65536, 64k or 16m";
    static final String CIDR_FORM = "an IP address or block, like 10.0.0.0/8, 192.168.1.7 or fd00::/8";
    static final String COUNT_FORM = "a whole number of sessions, at least 1, like 100";
    static final String RATE_FORM = "handshakes per second, at least 1, like 10/s or 10";
    static final String PREFIX_FORM = "a prefix length in bits, 1 to 128, like 64, 56 or 128";
    static final String PATH_FORM = "a file path, like /etc/wsproxy/proxy.p12";
    static final String ENV_FORM = "the name of an environment variable holding the password, like WSPROXY_TLS_PASSWORD";
    static final String PENDING_FORM = "a whole number of connections, at least 1, like 4096";

    private static final String INSECURE_BACKEND_TLS = "--insecure-backend-tls";
    private static final String REUSE_PORT = "--reuse-port";
    private static final String COMPRESSION_PASS_THROUGH = "--compression-pass-through";
    /** The flags that take no value. */
    private static final List<String> SWITCHES = List.of(INSECURE_BACKEND_TLS, REUSE_PORT, COMPRESSION_PASS_THROUGH);
    private static final Pattern LISTEN = Pattern.compile("(?:\\[([^\\[\\]\\s]+)]|([^:\\[\\]\\s]+)):(\\d{1,5})");
    private static final Pattern DURATION = Pattern.compile("(\\d{1,9})(ms|s|m|h)");
    private static final Pattern SIZE = Pattern.compile("(\\d{1,18})([kKmM]?)");
    private static final Pattern COUNT = Pattern.compile("\\d{1,10}");
    private static final Pattern RATE = Pattern.compile("(\\d{1,10})(?:/s)?");
    /** The user info of a URL in a message, up to its last {@code @}: a password, often. */
    private static final Pattern USER_INFO = Pattern.compile("//[^/?#\\s']*@");
    /** The host of a URL, unchecked: for what {@link java.net.URI} refuses to call a host. */
    private static final Pattern URL_HOST = Pattern.compile("[A-Za-z][A-Za-z0-9+.-]*://(?:[^/?#]*@)?([^/?#:\\[\\]]*)");

    private static final String USAGE = String.join("\n",
            "Usage: java -jar wsproxy-standalone.jar --route PATH=URL[,URL...]|PATH=URL;resolve|PATH=@FILE [options]",
            "",
            "A WebSocket reverse proxy: upgrade requests whose path starts with PATH go to the backends at URL.",
            "",
            "Options:",
            "  --listen HOST:PORT          where to listen (default " + DEFAULT_LISTEN + "); port 0 picks any",
            "                              free port; IPv6 as [::1]:8080",
            "  --route PATH=URL[,URL...]   proxy requests under PATH (like /ws/) to these backends: ws://, wss://,",
            "                              http:// or https:// URLs. Repeatable, at least one. PATH ends at the",
            "                              first = (it holds none). A URL without a path keeps the request path;",
            "                              a URL with a path replaces PATH by it.",
            "                              A URL may end with ;weight=N (1 to 1000, default 1) and ;backup (used",
            "                              only while no primary backend can take one): quote the flag for",
            "                              the shell, like '/ws/=ws://a:3000;weight=2,ws://b:3000;backup'",
            "  --route PATH=URL;resolve    the same, with one backend per address of URL's host name, resolved",
            "                              again every --dns-refresh (a Kubernetes headless service, say)",
            "  --route PATH=@FILE          the same, with the backends listed in FILE, one URL per line (# starts",
            "                              a comment), read again on SIGHUP: new sessions go to the new list,",
            "                              open ones stay; a file that cannot be used keeps the list in use",
            "  --balance NAME              how to pick a route's backend for each new session: round-robin",
            "                              (in turn, ignoring weights; the default), weighted-round-robin (the",
            "                              default when a backend has a ;weight=N), random, two-choices (the",
            "                              less busy of two random backends), least-connections (fewest open",
            "                              sessions per weight), ip-hash (sticky by client address),",
            "                              hash:header:NAME, hash:cookie:NAME, hash:query:NAME (sticky by that",
            "                              value, the same on every proxy instance). All but round-robin honour",
            "                              weights; round-robin with a ;weight=N is refused",
            "  --dns-refresh DURATION      how often ;resolve routes resolve their name again, like 5s (default "
                    + format(DEFAULT_DNS_REFRESH) + ");",
            "                              the JVM's DNS cache is set to it unless set already",
            "  --allow-origin ORIGIN       accept browser pages from ORIGIN only, like https://app.example.com;",
            "                              repeatable (default: any origin)",
            "  --reuse-port                let a new launcher listen on the same address while this one runs,",
            "                              for a restart that refuses no client: start the new one, then send",
            "                              this one SIGTERM; it stops accepting at once and drains (Linux,",
            "                              macOS); takes no value",
            "  --compression-pass-through  let clients and backends that both speak permessage-deflate use it",
            "                              end to end; the proxy relays the compressed frames without inflating",
            "                              them, so it cannot check their UTF-8 or inflated size (each peer must",
            "                              bound what it inflates, as behind nginx); takes no value",
            "  --connect-timeout DURATION  backend connect and handshake timeout, like 500ms, 5s, 2m (default "
                    + format(TimeoutPolicy.DEFAULT_CONNECT_TIMEOUT) + ")",
            "  --idle-timeout DURATION     close sessions idle this long, like 30s, 10m, 1h; 0 disables (default "
                    + format(TimeoutPolicy.DEFAULT_IDLE_TIMEOUT) + ")",
            "  --ping-interval DURATION    ping a side silent this long, and drop a peer that does not answer",
            "                              within another, like 30s; shorter than --idle-timeout (default: 0,",
            "                              no pings)",
            "  --max-message-size BYTES    largest message relayed, like 65536, 64k, 16m (k = KiB, m = MiB;",
            "                              default " + (ProxyBuilder.DEFAULT_MAX_MESSAGE_SIZE >> 20) + "m)",
            "  --trusted-proxy CIDR        trust the X-Forwarded-For, X-Forwarded-Proto and X-Forwarded-Host of",
            "                              peers in CIDR (a proxy in front, like 10.0.0.0/8 or 192.168.1.7):",
            "                              the client is then the right-most untrusted X-Forwarded-For hop.",
            "                              Repeatable (default: none; forwarding headers are replaced)",
            "  --max-connections-per-ip N  at most N open sessions per client address; more get 429",
            "                              (default: no limit)",
            "  --max-connections N         at most N open sessions in all; more get 503 (default: no limit)",
            "  --handshake-rate-per-ip N/s at most N handshakes a second per client address, in bursts of up",
            "                              to N, like 10/s or 10; more get 429 (default: no limit)",
            "  --per-ip-ipv6-prefix BITS   for the two per-address limits, count an IPv6 client with every",
            "                              address that shares its first BITS bits, 1 to 128; 128 counts each",
            "                              address alone (default " + ProxyBuilder.DEFAULT_PER_IP_IPV6_PREFIX
                    + ", the block one host or home gets)",
            "  --tls-keystore PATH         serve wss:// (TLS 1.2 and 1.3) with the key and certificate of this",
            "                              PKCS#12 or JKS store; needs --tls-password-env",
            "  --tls-password-env VAR      the environment variable holding the --tls-keystore password (never",
            "                              the password itself: command lines are visible to other users)",
            "  --tls-client-ca PATH        require clients to present a certificate (mutual TLS) that chains to",
            "                              these certificates, usually the CA that issues them (a PEM bundle);",
            "                              other clients fail the TLS handshake; needs --tls-keystore",
            "  --backend-truststore PATH   verify wss:// backends against these certificates (a PEM bundle or a",
            "                              PKCS#12/JKS store) instead of the JVM's; host names are always checked",
            "  --backend-truststore-password-env VAR",
            "                              the environment variable holding the --backend-truststore password",
            "  --backend-keystore PATH     present this client certificate (PKCS#12 or JKS) to wss:// backends",
            "                              (mutual TLS); needs --backend-keystore-password-env",
            "  --backend-keystore-password-env VAR",
            "                              the environment variable holding the --backend-keystore password",
            "  --insecure-backend-tls      do NOT verify backend certificates (development only; logged as a",
            "                              warning); takes no value",
            "  --handshake-timeout DURATION",
            "                              close connections that have not sent a whole request head this long",
            "                              after connecting or after their previous request, however steadily",
            "                              they drip it (slowloris), like 5s; 0 disables (default "
                    + format(ProxyBuilder.DEFAULT_HANDSHAKE_TIMEOUT) + ")",
            "  --max-pending-handshakes N  at most N connections waiting for a request head; one more closes",
            "                              the oldest of them (default " + ProxyBuilder.DEFAULT_MAX_PENDING_HANDSHAKES
                    + ")",
            "  --help                      print this help and exit",
            "",
            "Prints 'listening on http://HOST:PORT' (https:// with --tls-keystore) once ready. SIGTERM or",
            "Ctrl-C closes open sessions with 1001 (up to " + format(ProxyBuilder.DEFAULT_DRAIN_TIMEOUT)
                    + ") and exits with 0; a second one exits at once,",
            "dropping the connections still open. SIGHUP reads the TLS files and the backend files again",
            "(open sessions kept).",
            "Bad flags exit with 2.",
            "");

    private final boolean help;
    private final String host;
    private final int port;
    private final Map<String, List<Backend>> routes;
    private final Map<String, Path> backendFiles;
    private final Map<String, Backend> dnsRoutes;
    private final Duration dnsRefresh;
    private final String balance;
    private final List<String> allowedOrigins;
    private final Duration connectTimeout;
    private final Duration idleTimeout;
    private final Duration pingInterval;
    private final long maxMessageSize;
    private final List<String> trustedProxies;
    private final OptionalInt maxConnectionsPerIp;
    private final OptionalInt maxConnections;
    private final OptionalInt handshakeRatePerIp;
    private final int perIpIpv6Prefix;
    private final @Nullable Secured tlsKeyStore;
    private final @Nullable Path tlsClientCa;
    private final @Nullable Secured backendTrustStore;
    private final @Nullable Secured backendKeyStore;
    private final boolean insecureBackendTls;
    private final boolean reusePort;
    private final boolean compressionPassThrough;

    /** A file named on the command line with the password read from the environment variable named with it. */
    record Secured(Path path, @Nullable String password) {
        @Override
        public String toString() {
            return "Secured[" + path + (password == null ? "" : ", password set") + "]";
        }
    }
    private final Duration handshakeTimeout;
    private final int maxPendingHandshakes;

    private LauncherOptions(Parser parser) {
        this.help = parser.help;
        this.host = parser.host;
        this.port = parser.port;
        this.routes = Collections.unmodifiableMap(new LinkedHashMap<>(parser.routes));
        this.backendFiles = Collections.unmodifiableMap(new LinkedHashMap<>(parser.backendFiles));
        this.dnsRoutes = Collections.unmodifiableMap(new LinkedHashMap<>(parser.dnsRoutes));
        this.dnsRefresh = parser.dnsRefresh;
        this.balance = parser.balance;
        this.allowedOrigins = List.copyOf(parser.allowedOrigins);
        this.connectTimeout = parser.connectTimeout;
        this.idleTimeout = parser.idleTimeout;
        this.pingInterval = parser.pingInterval;
        this.maxMessageSize = parser.maxMessageSize;
        this.trustedProxies = List.copyOf(parser.trustedProxies);
        this.maxConnectionsPerIp = parser.maxConnectionsPerIp;
        this.maxConnections = parser.maxConnections;
        this.handshakeRatePerIp = parser.handshakeRatePerIp;
        this.perIpIpv6Prefix = parser.perIpIpv6Prefix;
        this.tlsKeyStore = parser.tlsKeyStore();
        this.tlsClientCa = parser.tlsClientCa();
        this.backendTrustStore = parser.backendTrustStore();
        this.backendKeyStore = parser.backendKeyStore();
        this.insecureBackendTls = parser.insecureBackendTls;
        this.reusePort = parser.reusePort;
        this.compressionPassThrough = parser.compressionPassThrough;
        this.handshakeTimeout = parser.handshakeTimeout;
        this.maxPendingHandshakes = parser.maxPendingHandshakes;
    }

    /**
     * Parses a command line.
     *
     * @param args the arguments of {@code main}
     * @return the options; {@link #help()} is {@code true} if {@code --help} or {@code -h} is among the arguments,
     *     wherever it is, and then nothing else is checked
     * @throws UsageException if a flag is unknown, lacks its value, has a malformed one, or no route is given
     */
    static LauncherOptions parse(String... args) throws UsageException {
        return parse(System.getenv(), args);
    }

    /**
     * Parses a command line, reading the passwords that {@code --*-password-env} flags name from {@code env}.
     *
     * @param env the environment
     * @param args the arguments of {@code main}
     * @return the options
     * @throws UsageException as {@link #parse(String...)}, and when a named variable is not set (set but empty, it
     *     holds an empty password)
     */
    static LauncherOptions parse(Map<String, String> env, String... args) throws UsageException {
        requireNonNull(env, "env");
        requireNonNull(args, "args");
        return new Parser(env).parse(args);
    }

    /** Returns the help text, ending with a newline. */
    static String usage() {
        return USAGE;
    }

    boolean help() {
        return help;
    }

    /** Returns the host to listen on, without brackets for IPv6. */
    String host() {
        return host;
    }

    int port() {
        return port;
    }

    /** Returns the address to listen on as given to {@code --listen}: {@code HOST:PORT}, IPv6 in brackets. */
    String listen() {
        return (host.contains(":") ? "[" + host + "]" : host) + ":" + port;
    }

    /** Returns the routes in the order given: path prefix to backends (for a file route, as its file was read). */
    Map<String, List<Backend>> routes() {
        return routes;
    }

    /**
     * Returns the routes whose backends come from a file ({@code --route PATH=@FILE}), path prefix to file, in the
     * order given: the launcher reads them again on reload ({@link #readBackendFile}).
     */
    Map<String, Path> backendFiles() {
        return backendFiles;
    }

    /**
     * Returns the routes that follow a DNS name ({@code --route PATH=URL;resolve}), path prefix to the URL whose host
     * is resolved, in the order given; they are not in {@link #routes()}.
     */
    Map<String, Backend> dnsRoutes() {
        return dnsRoutes;
    }

    /** Returns how often the {@link #dnsRoutes()} resolve their names again. */
    Duration dnsRefresh() {
        return dnsRefresh;
    }

    /**
     * Returns the {@code --balance} strategy as given; without one, {@link #ROUND_ROBIN}, or
     * {@link #WEIGHTED_ROUND_ROBIN} when a backend of any route has a {@code ;weight=N} other than 1 or a route reads
     * its backends from a file (a reload may bring weights; with every weight 1 it picks in the same order).
     */
    String balance() {
        return balance;
    }

    /** Returns a new selector for {@link #balance()}. */
    BackendSelector selector() {
        try {
            return selector(balance);
        } catch (UsageException e) {
            throw new IllegalStateException("balance: " + balance + " was checked by parse()", e);
        }
    }

    /** Returns the allowed origins; empty means any origin. */
    List<String> allowedOrigins() {
        return allowedOrigins;
    }

    Duration connectTimeout() {
        return connectTimeout;
    }

    /** Returns the idle timeout; {@link Duration#ZERO} means none. */
    Duration idleTimeout() {
        return idleTimeout;
    }

    /** Returns the keep-alive ping interval; {@link Duration#ZERO} means no pings. */
    Duration pingInterval() {
        return pingInterval;
    }

    long maxMessageSize() {
        return maxMessageSize;
    }

    /** Returns the {@code --trusted-proxy} blocks in the order given; empty means none is trusted. */
    List<String> trustedProxies() {
        return trustedProxies;
    }

    /** Returns the {@code --max-connections-per-ip} limit; empty means no limit. */
    OptionalInt maxConnectionsPerIp() {
        return maxConnectionsPerIp;
    }

    /** Returns the {@code --max-connections} limit; empty means no limit. */
    OptionalInt maxConnections() {
        return maxConnections;
    }

    /** Returns the {@code --handshake-rate-per-ip} limit in handshakes per second; empty means no limit. */
    OptionalInt handshakeRatePerIp() {
        return handshakeRatePerIp;
    }

    /**
     * Returns the {@code --per-ip-ipv6-prefix}: how many leading bits of an IPv6 client address make one client for
     * the per-address limits.
     */
    int perIpIpv6Prefix() {
        return perIpIpv6Prefix;
    }

    /** Returns the {@code --tls-keystore} and its password; {@code null} for plain {@code ws://}. */
    @Nullable Secured tlsKeyStore() {
        return tlsKeyStore;
    }

    /**
     * Returns the {@code --tls-client-ca}: the certificates a client certificate must chain to; {@code null} when
     * clients are asked for none.
     */
    @Nullable Path tlsClientCa() {
        return tlsClientCa;
    }

    /** Returns the {@code --backend-truststore} and its password, if any; {@code null} for the JVM's. */
    @Nullable Secured backendTrustStore() {
        return backendTrustStore;
    }

    /** Returns the {@code --backend-keystore} (client certificate) and its password; {@code null} for none. */
    @Nullable Secured backendKeyStore() {
        return backendKeyStore;
    }

    boolean insecureBackendTls() {
        return insecureBackendTls;
    }

    /** Returns whether {@code --reuse-port} was given: {@code ProxyBuilder.reusePort(true)}. */
    boolean reusePort() {
        return reusePort;
    }

    /**
     * Returns whether {@code --compression-pass-through} was given: {@code ProxyBuilder.compressionPassThrough(true)}.
     */
    boolean compressionPassThrough() {
        return compressionPassThrough;
    }

    /** Returns the {@code --handshake-timeout}; {@link Duration#ZERO} means none. */
    Duration handshakeTimeout() {
        return handshakeTimeout;
    }

    /** Returns the {@code --max-pending-handshakes} cap. */
    int maxPendingHandshakes() {
        return maxPendingHandshakes;
    }

    /**
     * Returns a builder with these options, ready to {@link ProxyBuilder#build() build}. The key and trust stores
     * are read here.
     *
     * @return a new builder
     * @throws UsageException if a key or trust store cannot be read, naming its flag
     * @throws IllegalStateException if these are {@link #help()} options, which have no route
     */
    ProxyBuilder toProxyBuilder() throws UsageException {
        if (help) {
            throw new IllegalStateException("toProxyBuilder(): --help was given, there is nothing to run");
        }
        ProxyBuilder builder = ProxyBuilder.create()
                .listen(host, port)
                .reusePort(reusePort)
                .compressionPassThrough(compressionPassThrough)
                .backendSelector(selector())
                .timeoutPolicy(TimeoutPolicy.custom().connect(connectTimeout).idle(idleTimeout).ping(pingInterval)
                        .build())
                .maxMessageSize(maxMessageSize);
        routes.forEach((path, backends) -> builder.route(path, backends.toArray(new Backend[0])));
        dnsRoutes.forEach((path, name) -> builder.route(path,
                route -> route.backendsFromDns(name.uri().toString(), dnsRefresh)));
        if (!allowedOrigins.isEmpty()) {
            builder.originValidator(OriginValidator.allowList(allowedOrigins.toArray(new String[0])));
        }
        if (!trustedProxies.isEmpty()) {
            builder.trustedProxies(trustedProxies.toArray(new String[0]));
        }
        maxConnectionsPerIp.ifPresent(builder::maxConnectionsPerIp);
        maxConnections.ifPresent(builder::maxConnections);
        handshakeRatePerIp.ifPresent(builder::handshakeRatePerIp);
        builder.perIpIpv6Prefix(perIpIpv6Prefix);
        if (tlsKeyStore != null) {
            ServerTls tls = readStore("--tls-keystore", () -> ServerTls.keyStore(tlsKeyStore.path(),
                    requireNonNull(tlsKeyStore.password())));
            Path clientCa = tlsClientCa;
            // Required, never optional: with no authenticator here to tell clients apart, a certificate only asked
            // for would let every client in all the same.
            builder.tls(clientCa == null ? tls
                    : readStore("--tls-client-ca", () -> tls.withClientCertificates(clientCa)));
        }
        builder.backendTls(backendTls());
        builder.handshakeTimeout(handshakeTimeout).maxPendingHandshakes(maxPendingHandshakes);
        return builder;
    }

    private BackendTls backendTls() throws UsageException {
        if (insecureBackendTls) {
            return BackendTls.insecureTrustAll();
        }
        BackendTls tls = BackendTls.systemTrust();
        Secured trust = backendTrustStore;
        if (trust != null) {
            String password = trust.password();
            tls = readStore("--backend-truststore", () -> password == null
                    ? BackendTls.trustStore(trust.path()) : BackendTls.trustStore(trust.path(), password));
        }
        Secured client = backendKeyStore;
        if (client != null) {
            BackendTls trusted = tls;
            tls = readStore("--backend-keystore", () -> trusted.withClientCertificate(client.path(),
                    requireNonNull(client.password())));
        }
        return tls;
    }

    private static <T> T readStore(String flag, Supplier<T> reader) throws UsageException {
        try {
            return reader.get();
        } catch (IllegalArgumentException e) {
            throw new UsageException(flag + ": " + e.getMessage());
        }
    }

    /**
     * Returns the selector a {@code --balance} value names.
     *
     * @throws UsageException if the value names none
     */
    static BackendSelector selector(String balance) throws UsageException {
        switch (balance) {
            case ROUND_ROBIN:
                return BackendSelector.roundRobin();
            case WEIGHTED_ROUND_ROBIN:
                return BackendSelector.weightedRoundRobin();
            case "random":
                return BackendSelector.random();
            case "two-choices":
                return BackendSelector.powerOfTwoChoices();
            case "least-connections":
                return BackendSelector.leastConnections();
            case "ip-hash":
                return BackendSelector.ipHash();
            default:
                break;
        }
        String[] parts = balance.split(":", 3);
        if (parts.length == 3 && parts[0].equals("hash") && !parts[2].isEmpty() && parts[2].strip().equals(parts[2])
                && parts[2].chars().noneMatch(Character::isWhitespace)) {
            String name = parts[2];
            try {
                switch (parts[1]) {
                    case "header":
                        return BackendSelector.consistentHash(HashKeys.header(name));
                    case "cookie":
                        return BackendSelector.consistentHash(HashKeys.cookie(name));
                    case "query":
                        return BackendSelector.consistentHash(HashKeys.queryParameter(name));
                    default:
                        break;
                }
            } catch (IllegalArgumentException e) {
                // A name no request can carry (X-User:, session=): the library says why.
                throw new UsageException("--balance: " + e.getMessage());
            }
        }
        throw UsageException.badValue("--balance", balance, BALANCE_FORM);
    }

    /**
     * Parses one backend of {@code --route}: a URL, then optionally {@code ;weight=N} and {@code ;backup}.
     *
     * @throws UsageException naming the part that is wrong; its message echoes the URL as given, user info included,
     *         which {@code Parser.route} masks for every {@code --route} message
     */
    static Backend parseBackend(String value) throws UsageException {
        String[] parts = value.strip().split(";", -1);
        String url = parts[0].strip();
        if (url.isEmpty()) {
            throw UsageException.badValue("--route", url, URL_FORM);
        }
        Matcher host = URL_HOST.matcher(url);
        if (host.lookingAt() && host.group(1).contains("_")) {
            // A Docker Compose service name like my_backend: java.net.URI sees no host in it, and "expected: a host"
            // would leave the user looking at one.
            throw new UsageException("--route: '" + url + "': the host " + host.group(1)
                    + " has an _, which java.net.URI takes in no host name (expected: letters, digits, - and ., or"
                    + " an IP address)");
        }
        Backend backend;
        try {
            backend = Backend.of(url);
        } catch (IllegalArgumentException e) {
            // The library names the cause (a query, user info, a port out of range, no host), which a fixed form here
            // would hide, as route() does for a refused route.
            throw new UsageException("--route: '" + url + "': " + e.getMessage());
        }
        boolean weighted = false;
        boolean backup = false;
        for (int i = 1; i < parts.length; i++) {
            String option = parts[i].strip();
            if (option.equals("backup") && !backup) {
                backup = true;
                backend = backend.asBackup();
            } else if (option.startsWith("weight=") && !weighted) {
                weighted = true;
                String number = option.substring("weight=".length());
                int weight = number.matches("\\d{1,4}") ? Integer.parseInt(number) : 0;
                if (weight < 1 || weight > 1000) {
                    throw UsageException.badValue("--route", ";" + option, BACKEND_OPTION_FORM);
                }
                backend = backend.withWeight(weight);
            } else if (option.equals("resolve")) {
                throw UsageException.badValue("--route", ";" + option, RESOLVE_FORM);
            } else {
                throw UsageException.badValue("--route", ";" + option, BACKEND_OPTION_FORM);
            }
        }
        return backend;
    }

    /**
     * Reads the backends of a {@code --route PATH=@FILE}: one per line, as after {@code PATH=} in {@code --route}
     * ({@code URL[;weight=N][;backup]}, no {@code ;resolve}); {@code #} starts a comment, blank lines are skipped,
     * and a line with a control character other than a tab, or bytes that are not UTF-8, is refused unechoed. The
     * list must have a backend and pass the library's checks of a route's list (no backend twice, one scheme family),
     * like a {@code --route} with URLs. Called at the start and again on each reload.
     *
     * @param route the route's path prefix
     * @param file the file
     * @return the backends, in the file's order
     * @throws UsageException naming the file (and the line, for a bad line), user info masked: it is not a regular
     *         file (symbolic links followed), cannot be read, is larger than {@link #MAX_BACKEND_FILE_BYTES}, has a
     *         line that is not text or not a backend, lists no backend, or the list is refused
     */
    static List<Backend> readBackendFile(String route, Path file) throws UsageException {
        if (Files.exists(file) && !Files.isRegularFile(file)) {
            // A named pipe with no writer blocked the read for good: at the start SIGTERM could not end the launcher,
            // and on a reload it held the reload's lock, so every later SIGHUP (TLS files too) waited behind it.
            throw new UsageException("--route: " + file + ": not a regular file (a directory, a pipe or a device;"
                    + " expected: a file of " + BACKEND_FILE_FORM + ", read again on SIGHUP)");
        }
        byte[] bytes;
        try (InputStream in = Files.newInputStream(file)) {
            // Bounded: a path mistaken for the list (a log, /dev/zero) is refused instead of filling the heap.
            bytes = in.readNBytes(MAX_BACKEND_FILE_BYTES + 1);
        } catch (NoSuchFileException e) {
            throw new UsageException("--route: " + file + ": no such file (expected: " + BACKEND_FILE_FORM + ")");
        } catch (AccessDeniedException e) {
            throw new UsageException("--route: " + file + ": permission denied");
        } catch (IOException e) {
            throw new UsageException("--route: " + file + ": cannot be read (" + e.getMessage() + ")");
        }
        if (bytes.length > MAX_BACKEND_FILE_BYTES) {
            throw new UsageException("--route: " + file + ": larger than " + (MAX_BACKEND_FILE_BYTES >> 20)
                    + " MiB (expected: " + BACKEND_FILE_FORM + ")");
        }
        List<Backend> backends = new ArrayList<>();
        String[] lines = new String(bytes, UTF_8).split("\\R", -1);
        for (int i = 0; i < lines.length; i++) {
            String line = lines[i];
            int comment = line.indexOf('#');
            String backend = (comment < 0 ? line : line.substring(0, comment)).strip();
            if (i == 0 && backend.startsWith("\uFEFF")) {
                // A byte order mark, which some Windows editors write.
                backend = backend.substring(1).strip();
            }
            if (backend.isEmpty()) {
                continue;
            }
            if (backend.chars().anyMatch(c -> c == '\uFFFD' || c != '\t' && Character.isISOControl(c))) {
                // A binary file named by mistake (a key store, an archive): its line was echoed, twice, to stderr or
                // the reload's warning, escape sequences and all.
                throw new UsageException("--route: " + file + " line " + (i + 1) + ": not text (a control character"
                        + " or bytes that are not UTF-8; expected: " + BACKEND_FILE_FORM + ")");
            }
            if (Arrays.stream(backend.split(";")).skip(1).anyMatch(option -> option.strip().equals("resolve"))) {
                // parseBackend's "expected: ;resolve alone, after a route's only URL" would fit a line that has it so.
                throw new UsageException(withoutUserInfo("--route: " + file + " line " + (i + 1) + ": ';resolve' in a"
                        + " backend file (expected: " + BACKEND_FILE_FORM + "; ;resolve only on the command line,"
                        + " --route PATH=URL;resolve)"));
            }
            try {
                backends.add(parseBackend(backend));
            } catch (UsageException e) {
                String cause = e.getMessage().startsWith("--route: ")
                        ? e.getMessage().substring("--route: ".length()) : e.getMessage();
                throw new UsageException(withoutUserInfo("--route: " + file + " line " + (i + 1) + ": " + cause));
            }
        }
        if (backends.isEmpty()) {
            throw new UsageException("--route: " + file + ": no backend in it (expected: " + BACKEND_FILE_FORM + ")");
        }
        try {
            // The library's checks of a route's list, with its message, as for a --route with URLs.
            ProxyBuilder.create().route(route, backends.toArray(new Backend[0]));
        } catch (IllegalArgumentException e) {
            throw new UsageException(withoutUserInfo("--route: " + file + ": " + e.getMessage()));
        }
        return List.copyOf(backends);
    }

    /**
     * Refuses weights under {@code --balance round-robin}, which would ignore them: for a backend file read again,
     * whose weights {@code parse} could not see.
     *
     * @throws UsageException naming the first backend with a weight other than 1
     */
    static void checkWeights(String balance, Collection<Backend> backends) throws UsageException {
        if (!balance.equals(ROUND_ROBIN)) {
            return;
        }
        for (Backend backend : backends) {
            if (backend.weight() != Backend.DEFAULT_WEIGHT) {
                throw new UsageException("--balance: round-robin ignores weights, and --route gives "
                        + backend.uri() + ";weight=" + backend.weight() + " (expected: weighted-round-robin or"
                        + " another strategy, which all honour weights, or no --balance, which then picks"
                        + " weighted-round-robin)");
            }
        }
    }

    /**
     * Masks the user info of every URL in {@code text} as the library does, {@code ws://admin:s3cret@host} becoming
     * {@code ws://***@host}: error messages go to stderr, and from there to journald or container logs.
     */
    static String withoutUserInfo(String text) {
        return USER_INFO.matcher(text).replaceAll("//***@");
    }

    /**
     * Parses a duration of the launcher's form: a whole number and one of {@code ms}, {@code s}, {@code m},
     * {@code h}, or {@code 0}.
     *
     * @throws UsageException naming {@code flag} if the value has another form
     */
    static Duration parseDuration(String flag, String value) throws UsageException {
        if (value.equals("0")) {
            return Duration.ZERO;
        }
        Matcher m = DURATION.matcher(value);
        if (!m.matches()) {
            throw UsageException.badValue(flag, value, DURATION_FORM);
        }
        long amount = Long.parseLong(m.group(1));
        return switch (m.group(2)) {
            case "ms" -> Duration.ofMillis(amount);
            case "s" -> Duration.ofSeconds(amount);
            case "m" -> Duration.ofMinutes(amount);
            default -> Duration.ofHours(amount);
        };
    }

    /**
     * Parses a byte count: a whole number, optionally followed by {@code k} (KiB) or {@code m} (MiB).
     *
     * @throws UsageException naming {@code flag} if the value has another form, is 0 or is too large
     */
    static long parseSize(String flag, String value) throws UsageException {
        Matcher m = SIZE.matcher(value);
        if (!m.matches()) {
            throw UsageException.badValue(flag, value, SIZE_FORM);
        }
        long number = Long.parseLong(m.group(1));
        int shift = switch (m.group(2)) {
            case "k", "K" -> 10;
            case "m", "M" -> 20;
            default -> 0;
        };
        if (number == 0 || number > (Long.MAX_VALUE >> shift)) {
            throw UsageException.badValue(flag, value, SIZE_FORM);
        }
        return number << shift;
    }

    /**
     * Parses a positive whole number that fits an {@code int}.
     *
     * @throws UsageException naming {@code flag} if the value has another form, is 0 or is too large
     */
    static int parseCount(String flag, String value) throws UsageException {
        return parseCount(flag, value, COUNT_FORM);
    }

    /**
     * Parses a positive whole number that fits an {@code int}.
     *
     * @throws UsageException naming {@code flag} and {@code form} if the value has another form, is 0 or is too large
     */
    static int parseCount(String flag, String value, String form) throws UsageException {
        long number = COUNT.matcher(value).matches() ? Long.parseLong(value) : 0;
        if (number < 1 || number > Integer.MAX_VALUE) {
            throw UsageException.badValue(flag, value, form);
        }
        return (int) number;
    }

    /**
     * Parses a rate per second: {@code N/s} or {@code N}, with {@code N} a positive whole number that fits an
     * {@code int}.
     *
     * @throws UsageException naming {@code flag} if the value has another form (another unit, like {@code 5/m}), is 0
     *     or is too large
     */
    static int parseRatePerSecond(String flag, String value) throws UsageException {
        Matcher m = RATE.matcher(value);
        long number = m.matches() ? Long.parseLong(m.group(1)) : 0;
        if (number < 1 || number > Integer.MAX_VALUE) {
            throw UsageException.badValue(flag, value, RATE_FORM);
        }
        return (int) number;
    }

    /** Formats a duration in the launcher's own form, like {@code 10s} or {@code 1h}. */
    static String format(Duration duration) {
        if (duration.isZero()) {
            return "0";
        }
        long millis = duration.toMillis();
        if (millis % 3_600_000 == 0) {
            return millis / 3_600_000 + "h";
        }
        if (millis % 60_000 == 0) {
            return millis / 60_000 + "m";
        }
        if (millis % 1000 == 0) {
            return millis / 1000 + "s";
        }
        return millis + "ms";
    }

    /** The mutable state of one parse. */
    private static final class Parser {
        private boolean help;
        private String host = ProxyBuilder.DEFAULT_HOST;
        private int port = ProxyBuilder.DEFAULT_PORT;
        private final Map<String, List<Backend>> routes = new LinkedHashMap<>();
        private final Map<String, Path> backendFiles = new LinkedHashMap<>();
        private final Map<String, Backend> dnsRoutes = new LinkedHashMap<>();
        private Duration dnsRefresh = DEFAULT_DNS_REFRESH;
        private String balance = ROUND_ROBIN;
        private final List<String> allowedOrigins = new ArrayList<>();
        private Duration connectTimeout = TimeoutPolicy.DEFAULT_CONNECT_TIMEOUT;
        private Duration idleTimeout = TimeoutPolicy.DEFAULT_IDLE_TIMEOUT;
        private Duration pingInterval = Duration.ZERO;
        private long maxMessageSize = ProxyBuilder.DEFAULT_MAX_MESSAGE_SIZE;
        private final List<String> trustedProxies = new ArrayList<>();
        private OptionalInt maxConnectionsPerIp = OptionalInt.empty();
        private OptionalInt maxConnections = OptionalInt.empty();
        private OptionalInt handshakeRatePerIp = OptionalInt.empty();
        private int perIpIpv6Prefix = ProxyBuilder.DEFAULT_PER_IP_IPV6_PREFIX;
        private final Map<String, String> values = new LinkedHashMap<>();
        private boolean insecureBackendTls;
        private boolean reusePort;
        private boolean compressionPassThrough;
        private Duration handshakeTimeout = ProxyBuilder.DEFAULT_HANDSHAKE_TIMEOUT;
        private int maxPendingHandshakes = ProxyBuilder.DEFAULT_MAX_PENDING_HANDSHAKES;
        private final List<String> seen = new ArrayList<>();
        private final Map<String, String> env;

        Parser(Map<String, String> env) {
            this.env = env;
        }

        LauncherOptions parse(String[] args) throws UsageException {
            // Help first, before any flag is checked: someone adding --help to a command line that fails wants to
            // read the usage, not the same error again.
            for (int i = 0; i < args.length; i++) {
                String arg = requireNonNull(args[i], "args[" + i + "]");
                if (arg.equals("--help") || arg.equals("-h")) {
                    help = true;
                    return new LauncherOptions(this);
                }
            }
            for (int i = 0; i < args.length; i++) {
                String arg = args[i];
                if (!arg.startsWith("--")) {
                    if (i > 0 && SWITCHES.contains(args[i - 1])) {
                        // --reuse-port true: "unexpected argument 'true'" named no flag, and a flag was the cause.
                        throw new UsageException(args[i - 1] + ": takes no value, but '" + arg + "' follows it"
                                + " (expected: " + args[i - 1] + " alone)");
                    }
                    throw new UsageException("unexpected argument '" + arg + "' (expected: a flag like --route)");
                }
                if (SWITCHES.contains(arg)) {
                    if (seen.contains(arg)) {
                        throw new UsageException(arg + ": given twice (expected: once)");
                    }
                    seen.add(arg);
                    switch (arg) {
                        case REUSE_PORT -> reusePort = true;
                        case COMPRESSION_PASS_THROUGH -> compressionPassThrough = true;
                        default -> insecureBackendTls = true;
                    }
                    continue;
                }
                for (String alone : List.of(INSECURE_BACKEND_TLS, REUSE_PORT, COMPRESSION_PASS_THROUGH, "--help")) {
                    if (arg.startsWith(alone + "=")) {
                        throw new UsageException(alone + ": takes no value (expected: " + alone + " alone)");
                    }
                }
                String flag = arg;
                @Nullable String value;
                int equals = arg.indexOf('=');
                if (equals > 0) {
                    flag = arg.substring(0, equals);
                    value = arg.substring(equals + 1);
                } else if (i + 1 < args.length && !args[i + 1].startsWith("--")) {
                    value = args[++i];
                } else {
                    value = null;
                }
                apply(flag, value);
            }
            if (seen.contains("--dns-refresh") && dnsRoutes.isEmpty()) {
                throw new UsageException("--dns-refresh: given without a --route PATH=URL;resolve");
            }
            if (routes.isEmpty() && dnsRoutes.isEmpty()) {
                throw new UsageException("--route: missing (expected: at least one --route " + ROUTE_FORM + ")");
            }
            if (!pingInterval.isZero() && !idleTimeout.isZero() && pingInterval.compareTo(idleTimeout) >= 0) {
                throw new UsageException("--ping-interval: " + format(pingInterval) + " (expected: shorter than"
                        + " --idle-timeout " + format(idleTimeout) + ", or 0)");
            }
            balanceWeights();
            checkTlsFlags();
            return new LauncherOptions(this);
        }

        /**
         * Lets weights count, as nginx does under its default balancing: round-robin ignores them, so without
         * {@code --balance} a weight picks weighted round-robin (the same order as round-robin while every weight is
         * 1), and {@code --balance round-robin} with a weight is refused rather than silently ignoring it.
         */
        private void balanceWeights() throws UsageException {
            List<Backend> all = routes.values().stream().flatMap(List::stream).toList();
            if (seen.contains("--balance")) {
                checkWeights(balance, all);
            } else if (!backendFiles.isEmpty()
                    || all.stream().anyMatch(backend -> backend.weight() != Backend.DEFAULT_WEIGHT)) {
                // A backend file may bring weights on a reload, when the strategy can no longer change.
                balance = WEIGHTED_ROUND_ROBIN;
            }
        }

        private void checkTlsFlags() throws UsageException {
            requireTogether("--tls-keystore", "--tls-password-env");
            requireTogether("--backend-keystore", "--backend-keystore-password-env");
            if (values.containsKey("--backend-truststore-password-env") && !values.containsKey("--backend-truststore")) {
                throw new UsageException("--backend-truststore-password-env: given without --backend-truststore");
            }
            if (values.containsKey("--tls-client-ca") && !values.containsKey("--tls-keystore")) {
                throw new UsageException("--tls-client-ca: given without --tls-keystore");
            }
            if (insecureBackendTls) {
                for (String flag : List.of("--backend-truststore", "--backend-keystore")) {
                    if (values.containsKey(flag)) {
                        throw new UsageException(INSECURE_BACKEND_TLS + ": given with " + flag
                                + " (expected: one or the other)");
                    }
                }
            }
            for (String flag : List.of("--tls-password-env", "--backend-truststore-password-env",
                    "--backend-keystore-password-env")) {
                String variable = values.get(flag);
                // Set but empty is a password: openssl pkcs12 -export takes an empty one, and the JDK opens such a
                // store with it. A wrong one is reported when the store is read, naming its flag.
                if (variable != null && env.get(variable) == null) {
                    throw new UsageException(flag + ": the environment variable " + variable
                            + " is not set (expected: the password in it)");
                }
            }
        }

        private void requireTogether(String file, String password) throws UsageException {
            if (values.containsKey(file) != values.containsKey(password)) {
                String given = values.containsKey(file) ? file : password;
                String missing = values.containsKey(file) ? password : file;
                throw new UsageException(given + ": given without " + missing + " (expected: both)");
            }
        }

        private @Nullable Secured secured(String file, @Nullable String passwordFlag) {
            String path = values.get(file);
            if (path == null) {
                return null;
            }
            String variable = passwordFlag == null ? null : values.get(passwordFlag);
            return new Secured(Path.of(path), variable == null ? null : env.get(variable));
        }

        @Nullable Secured tlsKeyStore() {
            return secured("--tls-keystore", "--tls-password-env");
        }

        @Nullable Path tlsClientCa() {
            String path = values.get("--tls-client-ca");
            return path == null ? null : Path.of(path);
        }

        @Nullable Secured backendTrustStore() {
            return secured("--backend-truststore", "--backend-truststore-password-env");
        }

        @Nullable Secured backendKeyStore() {
            return secured("--backend-keystore", "--backend-keystore-password-env");
        }

        private void apply(String flag, @Nullable String value) throws UsageException {
            String expected = switch (flag) {
                case "--listen" -> LISTEN_FORM;
                case "--route" -> ROUTE_FORM;
                case "--balance" -> BALANCE_FORM;
                case "--dns-refresh" -> DURATION_FORM + ", more than 0";
                case "--allow-origin" -> ORIGIN_FORM;
                case "--connect-timeout" -> DURATION_FORM;
                case "--idle-timeout" -> DURATION_FORM + "; 0 disables";
                case "--ping-interval" -> DURATION_FORM + "; 0 disables";
                case "--max-message-size" -> SIZE_FORM;
                case "--trusted-proxy" -> CIDR_FORM;
                case "--max-connections-per-ip", "--max-connections" -> COUNT_FORM;
                case "--handshake-rate-per-ip" -> RATE_FORM;
                case "--per-ip-ipv6-prefix" -> PREFIX_FORM;
                case "--tls-keystore", "--tls-client-ca", "--backend-truststore", "--backend-keystore" -> PATH_FORM;
                case "--tls-password-env", "--backend-truststore-password-env", "--backend-keystore-password-env" ->
                        ENV_FORM;
                case "--handshake-timeout" -> DURATION_FORM + "; 0 disables";
                case "--max-pending-handshakes" -> PENDING_FORM;
                default -> throw new UsageException("unknown flag " + flag + " (expected: see --help)");
            };
            if (value == null || value.isEmpty()) {
                throw new UsageException(flag + ": missing value (expected: " + expected + ")");
            }
            boolean repeatable = flag.equals("--route") || flag.equals("--allow-origin")
                    || flag.equals("--trusted-proxy");
            if (!repeatable && seen.contains(flag)) {
                throw new UsageException(flag + ": given twice (expected: once)");
            }
            seen.add(flag);
            switch (flag) {
                case "--listen" -> listen(value);
                case "--route" -> route(value);
                case "--balance" -> {
                    selector(value);
                    balance = value;
                }
                case "--allow-origin" -> {
                    try {
                        OriginValidator.allowList(value);
                    } catch (IllegalArgumentException e) {
                        throw UsageException.badValue(flag, value, ORIGIN_FORM);
                    }
                    allowedOrigins.add(value);
                }
                case "--dns-refresh" -> {
                    dnsRefresh = parseDuration(flag, value);
                    if (dnsRefresh.isZero()) {
                        throw UsageException.badValue(flag, value, DURATION_FORM + ", more than 0");
                    }
                }
                case "--connect-timeout" -> {
                    connectTimeout = parseDuration(flag, value);
                    if (connectTimeout.isZero()) {
                        throw UsageException.badValue(flag, value, DURATION_FORM + ", more than 0");
                    }
                }
                case "--idle-timeout" -> idleTimeout = parseDuration(flag, value);
                case "--ping-interval" -> {
                    pingInterval = parseDuration(flag, value);
                    if (!pingInterval.isZero() && pingInterval.compareTo(TimeoutPolicy.MIN_PING_INTERVAL) < 0) {
                        throw UsageException.badValue(flag, value,
                                "at least " + format(TimeoutPolicy.MIN_PING_INTERVAL) + ", or 0");
                    }
                }
                case "--max-message-size" -> maxMessageSize = parseSize(flag, value);
                case "--trusted-proxy" -> trustedProxy(value);
                case "--max-connections-per-ip" -> maxConnectionsPerIp = OptionalInt.of(parseCount(flag, value));
                case "--max-connections" -> maxConnections = OptionalInt.of(parseCount(flag, value));
                case "--per-ip-ipv6-prefix" -> {
                    perIpIpv6Prefix = parseCount(flag, value, PREFIX_FORM);
                    if (perIpIpv6Prefix > 128) {
                        throw UsageException.badValue(flag, value, PREFIX_FORM);
                    }
                }
                case "--tls-keystore", "--tls-client-ca", "--backend-truststore", "--backend-keystore" ->
                        values.put(flag, value);
                case "--tls-password-env", "--backend-truststore-password-env", "--backend-keystore-password-env" -> {
                    if (!value.matches("[A-Za-z_][A-Za-z0-9_]*")) {
                        throw UsageException.badValue(flag, value, ENV_FORM);
                    }
                    values.put(flag, value);
                }
                case "--handshake-timeout" -> handshakeTimeout = parseDuration(flag, value);
                case "--max-pending-handshakes" -> maxPendingHandshakes = parseCount(flag, value, PENDING_FORM);
                default -> handshakeRatePerIp = OptionalInt.of(parseRatePerSecond(flag, value));
            }
        }

        private void listen(String value) throws UsageException {
            Matcher m = LISTEN.matcher(value);
            int parsedPort = m.matches() ? Integer.parseInt(m.group(3)) : -1;
            if (parsedPort < 0 || parsedPort > 65535) {
                throw UsageException.badValue("--listen", value, LISTEN_FORM);
            }
            try {
                // Let the library check the host with its own rules, brackets included (it takes them around an
                // IPv6 address only): a blank host (--listen "$HOST:8080" with a space in $HOST) passed the pattern
                // and was refused only when the proxy was built, as a stack trace with exit 1.
                ProxyBuilder.create().listen(m.group(1) != null ? "[" + m.group(1) + "]" : m.group(2), parsedPort);
            } catch (IllegalArgumentException e) {
                throw UsageException.badValue("--listen", value, LISTEN_FORM);
            }
            host = m.group(1) != null ? m.group(1) : m.group(2);
            port = parsedPort;
        }

        private void trustedProxy(String value) throws UsageException {
            String block = value.strip();
            try {
                // Let the library check the block with its own rules: IP literals only, host names are refused.
                ProxyBuilder.create().trustedProxies(block);
            } catch (IllegalArgumentException e) {
                throw UsageException.badValue("--trusted-proxy", value, CIDR_FORM);
            }
            trustedProxies.add(block);
        }

        private void route(String value) throws UsageException {
            try {
                parseRoute(value);
            } catch (UsageException e) {
                // Every message echoes the value or a URL of it; a URL may carry a password (refused, but printed).
                throw new UsageException(withoutUserInfo(e.getMessage()));
            }
        }

        private void parseRoute(String value) throws UsageException {
            // PATH ends at the first =, one rule for both forms. A PATH that held =@ was read as a file route, and one
            // that held = only when a URL followed: the file name (which may hold = and @) cannot be told from it.
            int equals = value.indexOf('=');
            if (equals <= 0 || equals == value.length() - 1) {
                throw UsageException.badValue("--route", value, ROUTE_FORM);
            }
            String path = value.substring(0, equals);
            String target = value.substring(equals + 1);
            if (target.startsWith("@")) {
                fileRoute(value, path, target.substring(1));
                return;
            }
            String first = target.split("[,;]", 2)[0];
            int scheme = first.indexOf("://");
            if ((scheme < 0 ? first : first.substring(0, scheme)).contains("=")) {
                // /rooms=a/=ws://host: the rest of the PATH would be read as a URL, and refused as none.
                throw new UsageException("--route: '" + value + "': PATH ends at the first = (expected: a PATH"
                        + " without =, then =URL[,URL...] or =@FILE)");
            }
            checkNewRoute(path);
            String[] urls = target.split(",", -1);
            String[] options = urls[0].split(";", -1);
            if (urls.length == 1 && options.length > 1 && options[options.length - 1].strip().equals("resolve")) {
                // Spaced like the other options (ws://a:1 ; resolve): only ws://a:1;resolve was taken, and the
                // spaced one refused as a ;resolve not alone after the route's only URL, which it was.
                dnsRoute(value, path, urls[0].strip());
                return;
            }
            List<Backend> backends = new ArrayList<>();
            for (String url : urls) {
                backends.add(parseBackend(url));
            }
            try {
                // Let the library check the route with its own rules, and pass its message on: it names the cause
                // (a . or .. segment, a ;parameter, a backend given twice), which a fixed form here would hide.
                ProxyBuilder.create().route(path, backends.toArray(new Backend[0]));
            } catch (IllegalArgumentException e) {
                throw new UsageException("--route: '" + value + "': " + e.getMessage());
            }
            routes.put(path, List.copyOf(backends));
        }

        /** A {@code --route PATH=@FILE}: the backends listed in a file, read again on reload. */
        private void fileRoute(String value, String path, String name) throws UsageException {
            checkNewRoute(path);
            Path file;
            try {
                file = Path.of(name);
            } catch (IllegalArgumentException e) {
                // InvalidPathException: a NUL character, say.
                throw UsageException.badValue("--route", value, ROUTE_FORM);
            }
            if (name.isBlank()) {
                throw UsageException.badValue("--route", value, ROUTE_FORM);
            }
            routes.put(path, readBackendFile(path, file));
            backendFiles.put(path, file);
        }

        /** A {@code --route PATH=URL;resolve}: a backend per address of the URL's host, resolved again and again. */
        private void dnsRoute(String value, String path, String urlAndOption) throws UsageException {
            String url = urlAndOption.substring(0, urlAndOption.lastIndexOf(';'));
            // ;weight and ;backup do not go with it: every address is one more backend of the same kind.
            Backend name = parseBackend(url);
            if (name.weight() != Backend.DEFAULT_WEIGHT || name.isBackup()) {
                throw UsageException.badValue("--route", urlAndOption.substring(urlAndOption.indexOf(';')),
                        RESOLVE_FORM);
            }
            try {
                // The library's checks of the route, with its message.
                ProxyBuilder.create().route(path, route -> route.backendsFromDns(url.strip(), dnsRefresh));
            } catch (IllegalArgumentException e) {
                throw new UsageException("--route: '" + value + "': " + e.getMessage());
            }
            dnsRoutes.put(path, name);
        }

        private void checkNewRoute(String path) throws UsageException {
            if (routes.containsKey(path) || dnsRoutes.containsKey(path)) {
                throw new UsageException("--route: " + path + " routed twice (expected: each PATH once)");
            }
        }
    }
}
