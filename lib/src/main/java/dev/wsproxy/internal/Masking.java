package dev.wsproxy.internal;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.lang.reflect.Field;
import java.nio.BufferOverflowException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.concurrent.atomic.AtomicBoolean;

import org.eclipse.jetty.io.ByteBufferPool;
import org.eclipse.jetty.util.BufferUtil;
import org.eclipse.jetty.websocket.core.Behavior;
import org.eclipse.jetty.websocket.core.Configuration;
import org.eclipse.jetty.websocket.core.Frame;
import org.eclipse.jetty.websocket.core.OpCode;
import org.eclipse.jetty.websocket.core.WebSocketConnection;
import org.eclipse.jetty.websocket.core.exception.WebSocketException;
import org.eclipse.jetty.websocket.core.internal.FrameFlusher;
import org.eclipse.jetty.websocket.core.internal.Generator;
import org.eclipse.jetty.websocket.core.internal.Parser;
import org.jspecify.annotations.Nullable;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * WebSocket masking (RFC 6455 §5.3) eight bytes at a time, and its installation into Jetty's frame codec.
 *
 * <h2>Why</h2>
 * Every byte a client sends crosses two masking passes in a proxy built on Jetty's codec: the client leg's parser
 * unmasks each frame in place ({@code Frame.Parsed}), and the backend leg's flusher masks it again with a fresh key
 * while copying it into its output buffer ({@code Generator.generatePayload}). Jetty's loops step four bytes at a
 * time, with a byte-order swap and a branch in each step, which the JIT does not vectorise: measured (JMH
 * {@code FrameMaskingBenchmark}), the two passes cost about 28 times a plain copy of the same bytes, about 780 µs per
 * 1 MiB message, the whole of wsproxy's gap to nginx on large messages (nginx relays the client's bytes still masked).
 * The loops here step eight bytes at a time in the machine's byte order, through a {@link VarHandle} view of the
 * buffer (no byte swap, no per-step branch, no {@code Unsafe}); {@code docs/benchmarks.md} has the figures.
 *
 * <h2>How it gets in</h2>
 * Jetty builds a connection's {@link Parser} and {@link Generator} privately in the {@link WebSocketConnection}
 * constructor, with no way to substitute them. Both classes are public and meant to be extended (the parser's
 * {@code newFrame} is a protected factory), so {@link #install} swaps the one each leg needs through reflection on
 * their private fields: on a server-side connection (the client leg, which receives masked frames) a parser whose
 * frames unmask with {@link #unmask}; on a client-side one (the backend leg, which sends masked frames) a generator
 * that masks with {@link #maskCopy}. Both legs' parsers (on the backend leg, Jetty's with nothing else changed) also
 * tell the socket after each parse whether the peer stopped between two messages, for the socket's short reads
 * ({@link BoundaryParser}). It runs when the relay's leg opens, before the connection parses its first
 * frame or flushes its first masked one. The codec is otherwise Jetty's own: framing, limits, validation and close
 * handling are unchanged, and the bytes on the wire are the same.
 *
 * <p>Where the fields cannot be reached (Jetty's jars on the module path without {@code --add-opens}, or a Jetty
 * version whose fields differ) or the JVM refuses to change them (JEP 500's {@code
 * --illegal-final-field-mutation=deny}; from JDK 26 the JVM warns once unless started with {@code
 * --enable-final-field-mutation=ALL-UNNAMED}, or the proxy's module name on the module path), {@link #install} leaves
 * Jetty's loops in place and says so once at INFO: the proxy works as before, only slower on large messages. {@code
 * MaskingTest} fails if the pinned Jetty stops matching; {@code ModulePathTest} runs the proxy where it cannot reach
 * them.
 */
public final class Masking {

    private static final Logger LOG = LoggerFactory.getLogger(Masking.class);

    /** Reads and writes eight bytes of a buffer at any index, in the machine's byte order. */
    private static final VarHandle LONGS =
            MethodHandles.byteBufferViewVarHandle(long[].class, ByteOrder.nativeOrder());
    private static final boolean LITTLE_ENDIAN = ByteOrder.nativeOrder() == ByteOrder.LITTLE_ENDIAN;

    private static final @Nullable Fields FIELDS = Fields.find();
    /** Set when the JVM refused a swap after all (final field mutation denied, JEP 500): Jetty's loops stay. */
    private static final AtomicBoolean REFUSED = new AtomicBoolean();

    private Masking() {
    }

    /**
     * Whether {@link #install} can swap Jetty's codec parts on this JVM and Jetty version.
     */
    public static boolean available() {
        return FIELDS != null && !REFUSED.get();
    }

    /**
     * Gives the connection the faster masking its side needs: the unmasking parser to a server-side connection, the
     * masking generator to a client-side one. Call it before the connection parses or sends a frame. Does nothing
     * when {@link #available()} is false.
     *
     * @return the parser now the connection's, for {@link #inFrame}; {@code null} when it is still Jetty's own
     */
    static @Nullable Object install(WebSocketConnection connection, Configuration configuration, Behavior behavior) {
        Fields fields = FIELDS;
        if (fields == null || REFUSED.get()) {
            return null;
        }
        try {
            // An Object, as in Fields: typed as Jetty's, the verifier would load the parsers where it cannot.
            Object parser;
            ByteBufferPool pool = (ByteBufferPool) fields.connectionPool.get(connection);
            WebSocketEndPoints.ParseBoundaries boundaries =
                    WebSocketEndPoints.parseBoundaries(connection.getEndPoint());
            if (behavior == Behavior.SERVER) {
                parser = new UnmaskingParser(pool, configuration, boundaries);
            } else {
                // The flusher's generator is the one that generates (the connection's own only shows in dumps).
                fields.flusherGenerator.set(fields.connectionFlusher.get(connection), fields.generator);
                // Without boundaries too (a wss:// backend's end point is TLS's): it drops what follows a close.
                parser = new BoundaryParser(pool, configuration, boundaries);
            }
            fields.connectionParser.set(connection, parser);
            if (boundaries != null) {
                // The socket's last read was the handshake's, whole: a client waits for its 101 before it sends a
                // frame, and a backend had sent all it had when the read of its 101 came short. A bet like any short
                // read: if bytes came meanwhile, the selector signals them at once.
                boundaries.parsed(true);
            }
            return parser;
        } catch (IllegalAccessException | RuntimeException e) {
            // The fields were made accessible, but a JVM may still refuse to change a final field (JEP 500, with
            // --illegal-final-field-mutation=deny). The connection keeps what it had, Jetty's own, and so do the
            // next ones: either part works with the other's frames, as both give the same bytes.
            if (REFUSED.compareAndSet(false, true)) {
                LOG.info("Masking WebSocket frames with Jetty's own loops, slower on large messages ({})",
                        e.toString());
            }
            return null;
        }
    }

    /**
     * Whether the data frame {@code parser} (from {@link #install}) handed out last is a piece of a frame the peer
     * sent whose payload has more to come: Jetty's parser delivers a frame that has not fully arrived as pieces
     * ({@code autoFragment}), and keeps the length of the rest until the frame ends. Asked from the frame's handler,
     * before the connection parses again.
     */
    static boolean inFrame(Object parser) {
        return ((Parser) parser).getPayloadLength() > 0;
    }

    /**
     * Makes the connection's parser drop every frame it parses from now on, and read on (see {@link BoundaryParser}):
     * for a connection the proxy is closing with an error code. Does nothing where the parser is Jetty's own.
     */
    static void dropFrames(WebSocketConnection connection) {
        Fields fields = FIELDS;
        if (fields == null) {
            return;
        }
        try {
            if (fields.connectionParser.get(connection) instanceof BoundaryParser parser) {
                parser.dropping = true;
            }
        } catch (IllegalAccessException e) {
            // Not installed on this connection: Jetty's behaviour stands.
        }
    }

    /** Whether the connection's parser tells its socket where each parse stopped: for tests. */
    static boolean reportsBoundariesOn(WebSocketConnection connection) throws IllegalAccessException {
        Fields fields = FIELDS;
        return fields != null && fields.connectionParser.get(connection) instanceof BoundaryParser parser
                && parser.boundaries != null;
    }

    /** Whether the connection has the part {@link #install} gives its side: for tests. */
    static boolean installedOn(WebSocketConnection connection, Behavior behavior) throws IllegalAccessException {
        Fields fields = FIELDS;
        if (fields == null) {
            return false;
        }
        return behavior == Behavior.SERVER
                ? fields.connectionParser.get(connection) instanceof UnmaskingParser
                : fields.flusherGenerator.get(fields.connectionFlusher.get(connection)) instanceof MaskingGenerator;
    }

    /**
     * XORs the buffer's remaining bytes with the 4-byte mask in place, the mask's first byte on the byte at the
     * buffer's position (RFC 6455 §5.3). Masking and unmasking are the same operation. The position and limit are
     * left as they are.
     */
    public static void unmask(ByteBuffer buffer, byte[] mask) {
        int start = buffer.position();
        int end = buffer.limit();
        long wide = wide(mask);
        int i = start;
        for (int last = end - Long.BYTES; i <= last; i += Long.BYTES) {
            LONGS.set(buffer, i, (long) LONGS.get(buffer, i) ^ wide);
        }
        for (; i < end; i++) {
            buffer.put(i, (byte) (buffer.get(i) ^ mask[(i - start) & 3]));
        }
    }

    /**
     * Copies the remaining bytes of {@code from} to {@code to} at its position, XORed with the 4-byte mask as
     * {@link #unmask} does, and advances both positions past them.
     *
     * @throws BufferOverflowException if {@code to} has less room than {@code from} has bytes (nothing is copied)
     */
    public static void maskCopy(ByteBuffer from, ByteBuffer to, byte[] mask) {
        int length = from.remaining();
        if (to.remaining() < length) {
            throw new BufferOverflowException();
        }
        int source = from.position();
        int target = to.position();
        long wide = wide(mask);
        int i = 0;
        for (int last = length - Long.BYTES; i <= last; i += Long.BYTES) {
            LONGS.set(to, target + i, (long) LONGS.get(from, source + i) ^ wide);
        }
        for (; i < length; i++) {
            to.put(target + i, (byte) (from.get(source + i) ^ mask[i & 3]));
        }
        from.position(source + length);
        to.position(target + length);
    }

    /** The mask repeated twice, as eight bytes read in the machine's byte order. */
    private static long wide(byte[] mask) {
        long key = ((mask[0] & 0xFFL) << 24) | ((mask[1] & 0xFFL) << 16) | ((mask[2] & 0xFFL) << 8) | (mask[3] & 0xFFL);
        long twice = (key << 32) | key;
        return LITTLE_ENDIAN ? Long.reverseBytes(twice) : twice;
    }

    /**
     * Jetty's parser, telling its end point after each parse whether the peer stopped between two messages (see
     * "Short reads" in {@link WebSocketEndPoints}): the parse ended after a frame, not inside one, and that frame
     * (or the last data frame before it) was the last of its message.
     */
    static class BoundaryParser extends Parser {

        private final WebSocketEndPoints.@Nullable ParseBoundaries boundaries;
        /** Whether the parse under way ended between two frames: {@link #reset} says so. */
        private boolean betweenFrames;
        /** Whether the last data frame parsed was not its message's last. */
        private boolean inMessage;
        /** Whether a close frame was parsed: nothing after it is a frame of the session. */
        private boolean closed;
        /** Whether the proxy sent an error close on this connection: Jetty takes no more frames (see parse). */
        private volatile boolean dropping;

        BoundaryParser(ByteBufferPool pool, Configuration configuration,
                WebSocketEndPoints.@Nullable ParseBoundaries boundaries) {
            super(pool, configuration);
            this.boundaries = boundaries;
            if (boundaries != null) {
                boundaries.lingers(true);
            }
        }

        @Override
        public Frame.Parsed parse(ByteBuffer buffer) throws WebSocketException {
            betweenFrames = false;
            Frame.Parsed frame;
            try {
                // Jetty's parse resets the parser on its way out when it stopped between two frames.
                frame = super.parse(buffer);
                // After a close frame a peer sends nothing (RFC 6455 section 5.5.1). Jetty reads on after one to see
                // the end of the stream, and a data frame there would fail the connection before the other peer's
                // answer to the close is relayed: what follows a close is parsed (a broken frame still fails it) and
                // dropped. Likewise once the proxy has sent an error close (any code but 1000 and 3000-4999): Jetty then
                // closes the session both ways at once, while the close frame may still wait to be written behind a
                // data frame, and would refuse the next frame and read no more; a peer blocked writing to the proxy
                // (its pongs or echoes held back) would then never read the close frame, and be dropped at the close
                // timeout instead. A close frame among the dropped ones still ends the lingering.
                while (frame != null && (closed || dropping)) {
                    if (frame.getOpCode() == OpCode.CLOSE) {
                        onCloseFrame();
                    }
                    frame.close();
                    frame = super.parse(buffer);
                }
            } catch (RuntimeException e) {
                if (boundaries != null) {
                    boundaries.parsed(false);
                }
                throw e;
            }
            if (frame != null && frame.isDataFrame()) {
                inMessage = !frame.isFin();
            } else if (frame != null && frame.getOpCode() == OpCode.CLOSE) {
                onCloseFrame();
            }
            if (boundaries != null) {
                boundaries.parsed(betweenFrames && !inMessage);
            }
            return frame;
        }

        private void onCloseFrame() {
            closed = true;
            if (boundaries != null) {
                // The peer sends nothing after its close: its socket needs no lingering close.
                boundaries.lingers(false);
            }
        }

        @Override
        public void reset() {
            super.reset();
            betweenFrames = true;
        }
    }

    /** Jetty's parser, whose frames unmask themselves with {@link #unmask}. */
    static final class UnmaskingParser extends BoundaryParser {

        UnmaskingParser(ByteBufferPool pool, Configuration configuration) {
            this(pool, configuration, null);
        }

        UnmaskingParser(ByteBufferPool pool, Configuration configuration,
                WebSocketEndPoints.@Nullable ParseBoundaries boundaries) {
            super(pool, configuration, boundaries);
        }

        @Override
        protected Frame.Parsed newFrame(byte firstByte, byte @Nullable [] mask, @Nullable ByteBuffer payload,
                @Nullable Runnable releaser) {
            return new UnmaskedFrame(firstByte, mask, payload, releaser);
        }
    }

    /** A parsed frame; its constructor unmasks it (Jetty's {@code Parsed} calls {@link #demask} itself). */
    static final class UnmaskedFrame extends Frame.Parsed {

        UnmaskedFrame(byte firstByte, byte @Nullable [] mask, @Nullable ByteBuffer payload,
                @Nullable Runnable releaser) {
            super(firstByte, mask, payload, releaser);
        }

        /** As Jetty's: unmasks the payload, then zeroes the key so that a second call changes nothing. */
        @Override
        public void demask() {
            byte[] key = mask;
            if (key != null && hasPayload()) {
                unmask(payload, key);
                key[0] = 0;
                key[1] = 0;
                key[2] = 0;
                key[3] = 0;
            }
        }
    }

    /** Jetty's generator, masking payloads with {@link #maskCopy}. */
    static final class MaskingGenerator extends Generator {

        @Override
        public void generatePayload(Frame frame, ByteBuffer buffer) {
            ByteBuffer payload = frame.getPayload();
            if (!frame.isMasked() || !BufferUtil.hasContent(payload)) {
                super.generatePayload(frame, buffer);
                return;
            }
            // The buffer is in Jetty's flush mode: append after its content, as the superclass does.
            int position = BufferUtil.flipToFill(buffer);
            maskCopy(payload, buffer, frame.getMask());
            BufferUtil.flipToFlush(buffer, position);
        }
    }

    /**
     * The private fields of Jetty's connection and flusher that hold the parts swapped, made accessible once, and the
     * generator every backend leg shares (Jetty's keeps no state). Only made where Jetty's types can be reached. The
     * generator is held as an {@code Object}: typed as Jetty's, this record could not even be verified where Jetty's
     * internals are closed (the verifier would load the subclass to check it), and the proxy would fail there
     * instead of falling back ({@code ModulePathTest}).
     */
    private record Fields(Field connectionPool, Field connectionParser, Field connectionFlusher,
            Field flusherGenerator, Object generator) {

        static @Nullable Fields find() {
            try {
                return new Fields(
                        field(WebSocketConnection.class, "byteBufferPool", ByteBufferPool.class),
                        field(WebSocketConnection.class, "parser", Parser.class),
                        field(WebSocketConnection.class, "flusher", FrameFlusher.class),
                        field(FrameFlusher.class, "_generator", Generator.class),
                        new MaskingGenerator());
            } catch (ReflectiveOperationException | RuntimeException | LinkageError e) {
                LOG.info("Masking WebSocket frames with Jetty's own loops, slower on large messages ({})",
                        e.toString());
                return null;
            }
        }

        private static Field field(Class<?> owner, String name, Class<?> type) throws NoSuchFieldException {
            Field field = owner.getDeclaredField(name);
            if (!type.isAssignableFrom(field.getType())) {
                throw new NoSuchFieldException(owner.getName() + "." + name + " is a " + field.getType().getName()
                        + " (expected: " + type.getName() + ")");
            }
            field.setAccessible(true);
            return field;
        }
    }
}
