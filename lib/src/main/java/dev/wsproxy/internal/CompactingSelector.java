package dev.wsproxy.internal;

import java.io.IOException;
import java.lang.reflect.Field;
import java.nio.channels.CancelledKeyException;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.SelectableChannel;
import java.nio.channels.SelectionKey;
import java.nio.channels.Selector;

import org.eclipse.jetty.io.ManagedSelector;
import org.eclipse.jetty.io.SelectorManager;
import org.eclipse.jetty.util.IO;
import org.jspecify.annotations.Nullable;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * A selector of the proxy's server connector that, once a burst of ready sockets is over, moves its sockets to a fresh
 * JDK selector, so that a quiet selector does not keep paying for the burst.
 *
 * <h2>Why</h2>
 * A JDK selector keeps its selected keys in a {@code HashSet} whose table grows with the largest batch of sockets
 * ready at once and never shrinks, and Jetty's selector loop walks that table three times per select (to iterate
 * the keys, to update them, to clear the set) whatever the number of keys in it. After one batch of 1,000 ready
 * sockets (a broadcast, a reconnect storm, the benchmark's 500-connection echo), every later select costs about
 * 1.2 µs more (JMH {@code SelectedKeysBenchmark}: 1,637 ns against 395 ns), for as long as the process lives. Under a
 * light load, where each message is a select or two of its own, those walks were 15 % of the proxy's CPU in a
 * profile of the one-connection echo ({@code docs/benchmarks.md}, "Ninth round"); nginx, which reads its ready events
 * into an array, pays nothing of the kind.
 *
 * <h2>When</h2>
 * After a select returned at least {@value #BURST} keys, the selector counts the selects that return at most a
 * sixteenth of that largest batch; after {@value #QUIET_SELECTS} of them in a row, if it holds at most
 * {@value #MAX_KEYS} sockets (a move registers each of them again: about a microsecond each), it moves them before
 * its next select, and starts counting anew. Under a sustained heavy load the batches stay large and nothing moves; a
 * selector with many idle sockets never moves, as the move would cost more than it saves.
 *
 * <h2>How</h2>
 * What Jetty does to recover from a failed select ({@code ManagedSelector.handleSelectFailure}), on the selector's
 * own thread between two selects: each valid key's channel is registered with a new JDK selector with the key's
 * interest and attachment, the end point (or acceptor) is given its new key, the old key is cancelled, the old
 * selector closed. Unlike Jetty's recovery it never closes a socket whose key was cancelled (a paused acceptor) and
 * logs a move at DEBUG only. Jetty keeps the JDK selector in a private field, which is set through reflection; where
 * that field cannot be reached (Jetty on the module path) or is not there (another Jetty version), nothing moves. The
 * first select after a move does not block: a thread that read the old selector under Jetty's lock may have woken it
 * instead of the new one, and its update is run after this select. Jetty's {@code dump}, which reads the selector
 * without that lock, wakes the current one once more when it is done. Where Jetty passes in the selector it read
 * when a select began (its retry of the same select, its recovery from a failed one), the current one is used.
 */
final class CompactingSelector extends ManagedSelector {

    private static final Logger LOG = LoggerFactory.getLogger(CompactingSelector.class);

    /** The smallest batch of ready keys after which the selector may move (a table of 512 slots). */
    static final int BURST = 256;
    /** Selects in a row returning at most a sixteenth of the largest batch before a move. */
    static final int QUIET_SELECTS = 1024;
    /** The most sockets a move registers again. */
    static final int MAX_KEYS = 4096;

    private static final @Nullable Field SELECTOR = selectorField();

    /** The largest batch since the last move (or refused move); the selector's thread only. */
    private int largest;
    /** Quiet selects in a row since; the selector's thread only. */
    private int quiet;

    CompactingSelector(SelectorManager manager, int id) {
        super(manager, id);
    }

    /** Whether selectors can move here (Jetty's field reachable). */
    static boolean available() {
        return SELECTOR != null;
    }

    @Override
    protected int nioSelect(Selector selector, boolean now) throws IOException {
        // Jetty passes the selector it read when the select began: a move may have retired it since (Jetty's retry
        // of the same select, FORCE_SELECT_NOW). The current one is the right one in any case.
        selector = current(selector);
        if (!now && largest >= BURST && quiet >= QUIET_SELECTS) {
            largest = 0;
            quiet = 0;
            Selector fresh = move(selector);
            if (fresh != null) {
                selector = fresh;
                now = true;
            }
        }
        int selected = super.nioSelect(selector, now);
        if (selected > largest) {
            largest = selected;
        }
        if (largest >= BURST) {
            quiet = selected * 16 <= largest ? quiet + 1 : 0;
        }
        return selected;
    }

    @Override
    protected void handleSelectFailure(Selector selector, Throwable failure) throws IOException {
        // Jetty passes the selector it started the select with: after a move, recover from the current one.
        super.handleSelectFailure(current(selector), failure);
    }

    @Override
    public void dump(Appendable out, String indent) throws IOException {
        try {
            super.dump(out, indent);
        } finally {
            // Jetty's dump reads the selector without its lock and wakes it: had it read one a move just retired, the
            // wake-up went nowhere while Jetty marked the selector as not selecting, and updates would not wake it.
            Selector current = getSelector();
            if (current != null) {
                current.wakeup();
            }
        }
    }

    /** This selector's JDK selector (only the selector's thread changes it); {@code fallback} once Jetty dropped it. */
    private Selector current(Selector fallback) {
        Selector current = getSelector();
        return current != null ? current : fallback;
    }

    /** Moves every socket of {@code old} to a new JDK selector and makes it this selector's; null if it did not. */
    private @Nullable Selector move(Selector old) {
        Field field = SELECTOR;
        if (field == null || old.keys().size() > MAX_KEYS) {
            return null;
        }
        Selector fresh;
        try {
            fresh = old.provider().openSelector();
        } catch (IOException e) {
            LOG.debug("Cannot open a selector to move to", e);
            return null;
        }
        for (SelectionKey key : old.keys()) {
            moveKey(key, fresh);
        }
        try {
            field.set(this, fresh);
        } catch (IllegalAccessException e) {
            // Reachable when looked up; cannot happen. Keep the old one: the new one shares its sockets.
            throw new IllegalStateException(e);
        }
        IO.close(old);
        if (LOG.isDebugEnabled()) {
            LOG.debug("{} moved {} sockets to a fresh selector", this, fresh.keys().size());
        }
        return fresh;
    }

    private static void moveKey(SelectionKey key, Selector fresh) {
        SelectableChannel channel = key.channel();
        int interest;
        try {
            interest = key.interestOps();
        } catch (CancelledKeyException e) {
            return; // a closed socket, or a paused acceptor: registered again when it resumes
        }
        Object attachment = key.attachment();
        try {
            SelectionKey moved = channel.register(fresh, interest, attachment);
            if (attachment instanceof Selectable selectable) {
                selectable.replaceKey(moved);
            }
            key.cancel();
        } catch (ClosedChannelException e) {
            // Closed meanwhile by another thread: nothing to move.
        } catch (RuntimeException e) {
            // Cannot happen for the connector's non-blocking sockets; a socket left on a closed selector would hang.
            LOG.warn("Cannot move {} to a fresh selector, closing it", channel, e);
            IO.close(channel);
        }
    }

    private static @Nullable Field selectorField() {
        try {
            Field field = ManagedSelector.class.getDeclaredField("_selector");
            if (field.getType() != Selector.class) {
                return null;
            }
            field.setAccessible(true);
            return field;
        } catch (ReflectiveOperationException | RuntimeException e) {
            LOG.debug("Selectors will not move after bursts: {}", e.toString());
            return null;
        }
    }
}
