package dev.wsproxy.examples.standalone;

import static java.util.Objects.requireNonNull;

import java.io.IOException;
import java.io.PrintStream;
import java.net.URI;
import java.nio.file.Path;
import java.security.Security;
import java.time.Duration;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import dev.wsproxy.Backend;
import dev.wsproxy.WebSocketProxy;

/**
 * Runs the proxy the command line describes until it is told to stop, and maps every outcome to an exit status.
 *
 * <p>Output contract: once the proxy accepts connections, exactly one line {@code listening on http://HOST:PORT}
 * ({@code https://} with {@code --tls-keystore}) goes to {@code out}, with the port actually bound; errors go to
 * {@code err} as one line naming the flag and the expected form, followed by a hint. Logs go through SLF4J (to stderr in the runnable jar), never to {@code out}.
 */
final class Launcher {

    /** The proxy ran and stopped on request, or {@code --help} was asked for. */
    static final int EXIT_OK = 0;

    /** The proxy could not start, for instance because the address is taken. */
    static final int EXIT_FAILURE = 1;

    /** The command line is wrong. */
    static final int EXIT_USAGE = 2;

    static final String USAGE_HINT = "Run with --help for usage.";

    private static final Logger LOG = LoggerFactory.getLogger(Launcher.class);
    private static final String DNS_CACHE_TTL = "networkaddress.cache.ttl";

    private final PrintStream out;
    private final PrintStream err;
    /** Completed by the first {@link #stop()}: drain. */
    private final CompletableFuture<Void> stopRequested = new CompletableFuture<>();
    /** Completed by any later one: stop waiting for the drain. */
    private final CompletableFuture<Void> stoppedAgain = new CompletableFuture<>();
    private final Map<String, String> env;
    /** The proxy while it runs, for {@link #reload()}; {@code null} before it started and once it stopped. */
    private volatile WebSocketProxy running;
    /** The options of the proxy that runs, for {@link #reloadBackends()}; set before {@link #running}. */
    private volatile LauncherOptions runningOptions;
    /** Whether {@link #running} was set: a {@link #reload()} before it is remembered. Guarded by this. */
    private boolean started;
    /** A {@link #reload()} asked for before the proxy ran, to do once it runs. Guarded by this. */
    private boolean reloadPending;

    Launcher(PrintStream out, PrintStream err) {
        this(out, err, System.getenv());
    }

    /** A launcher that reads the passwords named by {@code --*-password-env} flags from {@code env}. */
    Launcher(PrintStream out, PrintStream err, Map<String, String> env) {
        this.out = requireNonNull(out, "out");
        this.err = requireNonNull(err, "err");
        this.env = Map.copyOf(env);
    }

    /**
     * Parses {@code args}, starts the proxy and blocks until {@link #stop()} is called, then drains it. A second
     * {@link #stop()} during the drain cuts it short ({@code WebSocketProxy.stop(Duration.ZERO)} during a stop): the
     * sessions left are dropped, and it returns moments later, with {@link #EXIT_OK}.
     *
     * @param args the command line
     * @return the exit status: {@link #EXIT_OK}, {@link #EXIT_FAILURE} or {@link #EXIT_USAGE}
     */
    int run(String... args) {
        LauncherOptions options;
        try {
            options = LauncherOptions.parse(env, args);
        } catch (UsageException e) {
            return usageError(e.getMessage());
        }
        if (options.help()) {
            out.print(LauncherOptions.usage());
            out.flush();
            return EXIT_OK;
        }

        if (!options.dnsRoutes().isEmpty()) {
            limitDnsCache(options.dnsRefresh());
        }
        WebSocketProxy proxy;
        try {
            proxy = options.toProxyBuilder().build();
        } catch (UsageException e) {
            // A key or trust store that cannot be read: a bad value of its flag, reported like any other.
            return usageError(e.getMessage());
        } catch (IllegalArgumentException e) {
            // A value parse() let through and the library refuses: still the command line's fault, so one line and
            // exit 2 as the contract says, not a stack trace and exit 1. parse() is meant to catch them all first.
            return usageError(e.getMessage());
        }
        URI uri;
        try {
            uri = proxy.start();
        } catch (IOException e) {
            proxy.close();
            err.println("wsproxy: --listen: cannot listen on " + options.listen() + " (" + e.getMessage() + ")");
            err.flush();
            return EXIT_FAILURE;
        }
        runningOptions = options;
        running = proxy;
        synchronized (this) {
            started = true;
        }
        LOG.info("New sessions go to a route's backends by {}", options.balance());
        // For the ways to end the JVM that do not go through stop(): System.exit elsewhere, or SIGHUP where the JVM
        // refused its reload handler (StopSignals.installReload).
        Thread fallback = new Thread(proxy::close, "wsproxy-shutdown-hook");
        Runtime.getRuntime().addShutdownHook(fallback);

        String address = uri.toString();
        out.println("listening on " + address.substring(0, address.length() - 1));
        out.flush();
        replayPendingReload();

        // join(), unlike await(), cannot be interrupted: nothing but stop() ends the wait.
        stopRequested.join();
        running = null;
        LOG.info("Stopping: closing {} open sessions with 1001 Going Away (stop again not to wait for them)",
                proxy.sessions().size());
        // On its own thread, so that this one can cut it short on a second stop: the drain waits up to its timeout
        // for peers that read nothing.
        CompletableFuture<Void> drained = CompletableFuture.runAsync(proxy::close, task -> {
            Thread drain = new Thread(task, "wsproxy-drain");
            drain.setDaemon(true);
            drain.start();
        });
        CompletableFuture.anyOf(drained, stoppedAgain).join();
        if (!drained.isDone()) {
            LOG.info("Stopped again: drain cut short, dropping {} sessions", proxy.sessions().size());
            // A stop during a stop ends its drain now: the sessions left are dropped, their closes reported.
            proxy.stop(Duration.ZERO);
            drained.join();
        }
        try {
            Runtime.getRuntime().removeShutdownHook(fallback);
        } catch (IllegalStateException shuttingDown) {
            // The JVM is already exiting: the hook runs and returns at once, as the proxy is stopped.
        }
        LOG.info("Stopped");
        return EXIT_OK;
    }

    /**
     * Has the JVM keep DNS answers no longer than {@code refresh} (in whole seconds, at least one), unless it was given
     * a time of its own ({@code networkaddress.cache.ttl}, {@code sun.net.inetaddr.ttl}): with its default, 30 s, a
     * {@code ;resolve} route refreshed more often would see the same addresses for 30 s. The JVM reads the setting at
     * its first look-up of a name, which comes after this: parsing the command line resolves no name.
     */
    private static void limitDnsCache(Duration refresh) {
        if (Security.getProperty(DNS_CACHE_TTL) != null || System.getProperty("sun.net.inetaddr.ttl") != null) {
            LOG.info("DNS answers are cached as the JVM was told (networkaddress.cache.ttl or sun.net.inetaddr.ttl),"
                    + " whatever --dns-refresh says");
            return;
        }
        long seconds = Math.max(1, (refresh.toMillis() + 999) / 1000);
        Security.setProperty(DNS_CACHE_TTL, Long.toString(seconds));
        LOG.info("DNS answers are cached for {} s at most, for the routes that follow a name", seconds);
    }

    private int usageError(String message) {
        err.println("wsproxy: " + message);
        err.println(USAGE_HINT);
        err.flush();
        return EXIT_USAGE;
    }

    /**
     * What {@code SIGHUP} does: {@link #reloadTls()}, then {@link #reloadBackends()}, each on its own (a bad TLS file
     * does not keep a backend file from being read). Callable from any thread; one reload at a time. Asked for before
     * the proxy runs (a {@code SIGHUP} while {@link #run} starts it, after it may have read a file that changed
     * since), it is remembered and done once the proxy runs, right after its {@code listening on} line: once, however
     * many times it was asked for.
     */
    synchronized void reload() {
        if (!started) {
            if (!reloadPending) {
                LOG.info("Reload asked for while the proxy starts: done once it runs");
            }
            reloadPending = true;
            return;
        }
        reloadPending = false;
        reloadTls();
        reloadBackends();
    }

    /**
     * Does the {@link #reload()} asked for while the proxy started (a {@code SIGHUP} that came after a file was read,
     * which may have changed since), unless one ran since it started.
     */
    private synchronized void replayPendingReload() {
        if (reloadPending) {
            LOG.info("Reading the TLS and backend files again: a reload was asked for while the proxy started");
            reload();
        }
    }

    /**
     * Reads the backend file of each {@code --route PATH=@FILE} again and gives the route the backends it lists
     * ({@code WebSocketProxy.updateBackends}): new sessions go to them, open sessions are kept, on backends removed
     * too, and the backends that stay keep their counters. A file that cannot be used changes nothing for its route:
     * one warning names it (and the line), and the route goes on with the backends it had. Does nothing when the
     * proxy is not running.
     */
    private void reloadBackends() {
        WebSocketProxy proxy = running;
        LauncherOptions options = runningOptions;
        if (proxy == null || options == null) {
            LOG.info("Not reloading backends: the proxy is not running");
            return;
        }
        for (Map.Entry<String, Path> route : options.backendFiles().entrySet()) {
            List<Backend> backends;
            try {
                backends = LauncherOptions.readBackendFile(route.getKey(), route.getValue());
                LauncherOptions.checkWeights(options.balance(), backends);
            } catch (UsageException e) {
                LOG.warn("Backends of route {} not reloaded, the list in use stays: {}", route.getKey(),
                        e.getMessage());
                continue;
            }
            // The library logs the new list; backends that stay keep their sessions and counters.
            proxy.updateBackends(route.getKey(), backends);
        }
    }

    /**
     * Reads the TLS files of the command line again ({@code --tls-keystore}, {@code --tls-client-ca},
     * {@code --backend-truststore}, {@code --backend-keystore}) and uses them for new connections, open sessions kept
     * ({@code WebSocketProxy.reloadTls()}); {@code SIGHUP} calls it, as it makes nginx read its certificates again. A
     * file that cannot be used changes nothing: one warning names it, and the proxy goes on with the files it had.
     * Callable from any thread; does nothing when the proxy is not running.
     */
    void reloadTls() {
        WebSocketProxy proxy = running;
        if (proxy == null) {
            LOG.info("Not reloading TLS: the proxy is not running");
            return;
        }
        try {
            proxy.reloadTls();
        } catch (IllegalArgumentException e) {
            LOG.warn("TLS not reloaded, the files in use stay: {}", e.getMessage());
        } catch (IllegalStateException stopping) {
            LOG.info("Not reloading TLS: the proxy is stopping");
        }
    }

    /**
     * Asks {@link #run} to drain the proxy and return; asked again, to drop the sessions the drain still waits for.
     * Callable from any thread, any number of times.
     */
    void stop() {
        if (!stopRequested.complete(null)) {
            stoppedAgain.complete(null);
        }
    }
}
