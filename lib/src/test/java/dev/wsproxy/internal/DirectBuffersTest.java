package dev.wsproxy.internal;

import static org.assertj.core.api.Assertions.assertThat;

import org.eclipse.jetty.io.ArrayByteBufferPool;
import org.eclipse.jetty.io.RetainableByteBuffer;
import org.junit.jupiter.api.Test;

class DirectBuffersTest {

    @Test
    void handsOutDirectBuffersWhenHeapIsAskedForAndReturnsThemToThePool() {
        ArrayByteBufferPool.Tracking pool = new ArrayByteBufferPool.Tracking();
        DirectBuffers direct = new DirectBuffers(pool);

        RetainableByteBuffer heapAsked = direct.acquire(64 * 1024, false);
        RetainableByteBuffer directAsked = direct.acquire(100, true);

        assertThat(heapAsked.getByteBuffer().isDirect()).isTrue();
        assertThat(heapAsked.capacity()).isGreaterThanOrEqualTo(64 * 1024);
        assertThat(directAsked.getByteBuffer().isDirect()).isTrue();
        assertThat(pool.getLeaks()).hasSize(2);
        heapAsked.release();
        directAsked.release();
        assertThat(pool.getLeaks()).isEmpty();
        assertThat(pool.getDirectByteBufferCount()).isEqualTo(2);
        assertThat(pool.getHeapByteBufferCount()).isZero();
    }
}
