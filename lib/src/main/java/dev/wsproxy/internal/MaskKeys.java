package dev.wsproxy.internal;

import java.security.SecureRandom;
import java.util.Random;

/**
 * The backend legs' masking keys (RFC 6455 §5.3: "derived from a strong source of entropy"), drawn from one strong
 * generator in blocks instead of four bytes at a time.
 *
 * <h2>Why</h2>
 * Jetty's client-side connection draws a fresh four-byte key from its {@link Random} for every frame it sends. With a
 * {@link SecureRandom} (the default {@code NativePRNG} on Linux) each draw takes a lock global to the JVM, reads the
 * clock, steps a SHA-1 generator and mixes in bytes from the kernel: about 1.4 % of the proxy's CPU in a profile of
 * the 64-byte echo, most of it the per-call work, not the bytes. A block of {@value #BLOCK} bytes drawn at once
 * serves {@value #BLOCK}/4 keys with one call ({@code MaskKeysBenchmark} has the figures).
 *
 * <h2>Guarantees</h2>
 * Every byte handed out comes from the strong generator and is handed out once: each thread keeps its own block (no
 * lock, no byte shared between threads), and a block is drawn again only when it is used up. The keys are as
 * unpredictable as the generator's output; a block drawn ahead holds nothing an observer of the wire has seen. The
 * {@link Random} methods other than {@link #nextBytes} draw from the same blocks; {@link #setSeed} is ignored, as the
 * strong generator seeds itself.
 */
public final class MaskKeys extends Random {

    private static final long serialVersionUID = 1L;

    /** Bytes drawn at once: 64 keys, a quarter of a KiB per thread that sends to backends. */
    static final int BLOCK = 256;

    private final transient Random source;
    private final transient ThreadLocal<Block> blocks = ThreadLocal.withInitial(Block::new);

    /** Keys from a new {@link SecureRandom}. */
    public MaskKeys() {
        this(new SecureRandom());
    }

    /** Keys from {@code source}, which must be a strong generator safe for use by several threads. */
    MaskKeys(Random source) {
        this.source = source;
    }

    @Override
    public void nextBytes(byte[] bytes) {
        Block block = blocks.get();
        int done = 0;
        while (done < bytes.length) {
            if (block.used == BLOCK) {
                source.nextBytes(block.bytes);
                block.used = 0;
            }
            int count = Math.min(bytes.length - done, BLOCK - block.used);
            System.arraycopy(block.bytes, block.used, bytes, done, count);
            block.used += count;
            done += count;
        }
    }

    @Override
    protected int next(int bits) {
        byte[] four = new byte[4];
        nextBytes(four);
        int value = (four[0] & 0xFF) << 24 | (four[1] & 0xFF) << 16 | (four[2] & 0xFF) << 8 | four[3] & 0xFF;
        return value >>> (32 - bits);
    }

    @Override
    public void setSeed(long seed) {
        // Called by Random's constructor; the strong generator seeds itself.
    }

    /** One thread's unused bytes: {@code bytes[used..BLOCK)}. */
    private static final class Block {
        final byte[] bytes = new byte[BLOCK];
        int used = BLOCK;
    }
}
