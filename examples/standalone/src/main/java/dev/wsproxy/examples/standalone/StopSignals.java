package dev.wsproxy.examples.standalone;

import java.util.function.Consumer;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import sun.misc.Signal;

/**
 * Turns {@code SIGTERM} and {@code SIGINT} (Ctrl-C) into a call of our own, so that the launcher drains and exits
 * with status 0; each signal is one call, and a second one during the drain makes the launcher exit at once.
 *
 * <p>Why not a shutdown hook alone: the JVM's own handler for these signals runs the shutdown hooks and then exits with
 * {@code 128 + signal} (143 for {@code SIGTERM}, 130 for {@code SIGINT}) whatever the hooks do, and a hook cannot
 * call {@code System.exit(0)} (it would block forever); {@code Runtime.halt(0)} would, but it cuts the other hooks
 * short. Service managers and orchestrators read 143 as a failure. {@code sun.misc.Signal} (left accessible in
 * module {@code jdk.unsupported} by JEP 260 for this use) replaces that handler: the signal only wakes the main
 * thread, which drains the proxy and exits with 0. Verified on JDK 17: a hook-only launcher exits with 143.
 *
 * <p>javac warns that {@code sun.misc.Signal} is "internal proprietary API"; the warning cannot be suppressed
 * (not even with {@code @SuppressWarnings}), and it is expected. The class is exported by {@code jdk.unsupported}
 * precisely so that applications can use it until a standard replacement exists.
 *
 * <p>{@code SIGHUP} reads the TLS and backend files again ({@link #installReload}), as it makes nginx read its
 * configuration. Other ways the JVM ends
 * ({@code System.exit} elsewhere) still run the shutdown hook the launcher registers as a fallback.
 */
final class StopSignals {

    private static final Logger LOG = LoggerFactory.getLogger(StopSignals.class);

    private StopSignals() {
    }

    /**
     * Makes {@code SIGTERM} and {@code SIGINT} call {@code onSignal} (on a JVM signal thread) instead of shutting the
     * JVM down.
     *
     * @param onSignal called with the signal name, like {@code TERM}; must return quickly
     * @return {@code true} if both signals are handled; {@code false} if the JVM refused one (for instance under
     *         {@code -Xrs}), which then keeps its default behaviour
     */
    static boolean install(Consumer<String> onSignal) {
        boolean all = true;
        for (String name : new String[] {"TERM", "INT"}) {
            try {
                Signal.handle(new Signal(name), signal -> onSignal.accept(signal.getName()));
            } catch (IllegalArgumentException e) {
                LOG.warn("Cannot handle SIG{}: the JVM's default applies ({})", name, e.getMessage());
                all = false;
            }
        }
        return all;
    }

    /**
     * Makes {@code SIGHUP} call {@code onReload} on a thread of its own, instead of shutting the JVM down.
     *
     * @param onReload what a {@code SIGHUP} does; may take a while (it reads files)
     * @return {@code true} if the signal is handled; {@code false} if the JVM refused it, which then keeps its
     *         default behaviour
     */
    static boolean installReload(Runnable onReload) {
        try {
            Signal.handle(new Signal("HUP"), signal -> new Thread(onReload, "wsproxy-reload").start());
            return true;
        } catch (IllegalArgumentException e) {
            LOG.warn("Cannot handle SIGHUP: the JVM's default applies ({})", e.getMessage());
            return false;
        }
    }
}
