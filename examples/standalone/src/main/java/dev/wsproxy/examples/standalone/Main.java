package dev.wsproxy.examples.standalone;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The command-line launcher: {@code java -jar wsproxy-standalone.jar --route /ws/=ws://127.0.0.1:3000}.
 *
 * <p>Exit status: 0 after {@code --help} or after {@code SIGTERM}/{@code SIGINT} drained the proxy (or a second one
 * cut the drain short), 1 if it could not start, 2 for a bad command line. See {@code --help} and
 * {@code examples/standalone/README.md} for the flags.
 */
public final class Main {

    private static final Logger LOG = LoggerFactory.getLogger(Main.class);

    private Main() {
    }

    /**
     * Runs the launcher and exits with its status.
     *
     * @param args the flags
     */
    public static void main(String[] args) {
        Launcher launcher = new Launcher(System.out, System.err);
        StopSignals.install(signal -> {
            LOG.info("Received SIG{}", signal);
            launcher.stop();
        });
        StopSignals.installReload(() -> {
            LOG.info("Received SIGHUP: reading the TLS and backend files again");
            launcher.reload();
        });
        System.exit(launcher.run(args));
    }
}
