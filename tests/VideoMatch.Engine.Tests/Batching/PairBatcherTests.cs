using System.Buffers;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using VideoMatch.Engine.Batching;
using VideoMatch.Engine.Frames;
using VideoMatch.Engine.Inference;
using VideoMatch.Tests;

namespace VideoMatch.Engine.Tests.Batching;

public sealed class PairBatcherTests
{

    [Fact]
    public async Task EnqueueAsync_FullBatch_RunsWithoutWaitingForDelay()
    {
        var (batcher, matcher, _) = Create(maxBatchSize: 4, delayMs: 1000);
        await using var _ = batcher;

        var pairs = Enumerable.Range(0, 4).Select(i => Pair(i)).ToArray();
        foreach (var pair in pairs)
        {
            await batcher.EnqueueAsync(pair, CancellationToken.None);
        }

        var outcomes = await Task.WhenAll(pairs.Select(p => p.Completion)).WaitAsync(Limits.Call);

        Assert.Equal([4], matcher.BatchSizes);
        Assert.All(outcomes, o => Assert.Equal(4, o.Timings.BatchSize));
    }

    [Fact]
    public async Task EnqueueAsync_PartialBatch_ClosesWhenOldestPairHasWaitedMaxDelay()
    {
        var (batcher, matcher, time) = Create(maxBatchSize: 8, delayMs: 5);
        await using var _ = batcher;

        var first = Pair(0);
        await batcher.EnqueueAsync(first, CancellationToken.None);
        time.Advance(TimeSpan.FromMilliseconds(4));
        var second = Pair(1);
        await batcher.EnqueueAsync(second, CancellationToken.None);
        time.Advance(TimeSpan.FromMilliseconds(1));
        var outcomes = await Task.WhenAll(first.Completion, second.Completion).WaitAsync(Limits.Call);
        var late = Pair(2);
        await batcher.EnqueueAsync(late, CancellationToken.None);
        time.Advance(TimeSpan.FromMilliseconds(5));
        await late.Completion.WaitAsync(Limits.Call);

        // 4 ms in, the batch was still open for the second pair; at 5 ms it closed without the third.
        Assert.Equal([2, 1], matcher.BatchSizes);
        Assert.Equal(5, outcomes[0].Timings.QueueWaitMs, 3);
        Assert.Equal(1, outcomes[1].Timings.QueueWaitMs, 3);
    }

    [Fact]
    public async Task Completion_ManyPairs_EachGetsItsOwnResult()
    {
        var (batcher, _, time) = Create(maxBatchSize: 3, delayMs: 1);
        await using var _ = batcher;

        var pairs = Enumerable.Range(0, 10).Select(i => Pair(i)).ToArray();
        foreach (var pair in pairs)
        {
            await batcher.EnqueueAsync(pair, CancellationToken.None);
        }

        time.Advance(TimeSpan.FromMilliseconds(1));
        var outcomes = await Task.WhenAll(pairs.Select(p => p.Completion)).WaitAsync(Limits.Call);

        // The fake matcher answers each pair with its frames' sequence numbers.
        Assert.Equal(Enumerable.Range(0, 10).Select(i => (float)i).ToArray(), outcomes.Select(o => o.Matches.Scores[0]).ToArray());
    }

    [Fact]
    public async Task EnqueueAsync_QueueFull_WaitsUntilTheModelTakesABatch()
    {
        var (batcher, matcher, _) = Create(maxBatchSize: 1, delayMs: 0, capacity: 1);
        await using var _ = batcher;
        matcher.Gate = new SemaphoreSlim(0);

        var running = Pair(0);
        await batcher.EnqueueAsync(running, CancellationToken.None);
        await matcher.Entered.WaitAsync(Limits.Call);          // pair 0 is in the model, which is held
        await batcher.EnqueueAsync(Pair(1), CancellationToken.None).AsTask().WaitAsync(Limits.Call); // fills the queue
        var blocked = batcher.EnqueueAsync(Pair(2), CancellationToken.None).AsTask();

        Assert.False(blocked.IsCompleted);
        matcher.Gate.Release(3);
        await blocked.WaitAsync(Limits.Call);
        await running.Completion.WaitAsync(Limits.Call);
    }

    [Fact]
    public async Task RunLoop_CancelledStream_RemovesOnlyItsPairs()
    {
        var (batcher, matcher, time) = Create(maxBatchSize: 8, delayMs: 5);
        await using var _ = batcher;
        using var streamA = new CancellationTokenSource();

        var a1 = Pair(1, streamA.Token);
        var b1 = Pair(2);
        var a2 = Pair(3, streamA.Token);
        var b2 = Pair(4);
        foreach (var pair in new[] { a1, b1, a2, b2 })
        {
            await batcher.EnqueueAsync(pair, CancellationToken.None);
        }

        await streamA.CancelAsync();
        time.Advance(TimeSpan.FromMilliseconds(5));
        await Task.WhenAll(b1.Completion, b2.Completion).WaitAsync(Limits.Call);

        Assert.All(matcher.Batches.SelectMany(b => b), s => Assert.True(s is 2 or 4, $"pair {s} of the cancelled stream ran"));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => a1.Completion.WaitAsync(Limits.Call));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => a2.Completion.WaitAsync(Limits.Call));
        Assert.True(a1.Frame0.IsReleased && a2.Frame1.IsReleased, "frames of cancelled pairs go back to the pool");
    }

    [Fact]
    public async Task RunLoop_ModelThrows_FailsOnlyThatBatch()
    {
        var (batcher, matcher, _) = Create(maxBatchSize: 1, delayMs: 0);
        await using var _ = batcher;
        matcher.FailOnSequence = 1;

        var failing = Pair(1);
        var next = Pair(2);
        await batcher.EnqueueAsync(failing, CancellationToken.None);
        await batcher.EnqueueAsync(next, CancellationToken.None);

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => failing.Completion.WaitAsync(Limits.Call));
        var outcome = await next.Completion.WaitAsync(Limits.Call);

        Assert.Contains("injected", error.Message, StringComparison.Ordinal);
        Assert.Equal(2f, outcome.Matches.Scores[0]);
    }

    [Fact]
    public async Task Observer_SeesEachBatchWithItsPairsQueueWaitsAndFailures()
    {
        var (batcher, matcher, time) = Create(maxBatchSize: 8, delayMs: 5);
        await using var _ = batcher;
        var observer = new RecordingObserver();
        batcher.Observer = observer;
        matcher.FailOnSequence = 9;

        var first = Pair(0);
        await batcher.EnqueueAsync(first, CancellationToken.None);
        time.Advance(TimeSpan.FromMilliseconds(3));
        var second = Pair(1);
        await batcher.EnqueueAsync(second, CancellationToken.None);
        time.Advance(TimeSpan.FromMilliseconds(2));
        await Task.WhenAll(first.Completion, second.Completion).WaitAsync(Limits.Call);
        var failing = Pair(9);
        await batcher.EnqueueAsync(failing, CancellationToken.None);
        time.Advance(TimeSpan.FromMilliseconds(5));
        await Assert.ThrowsAsync<InvalidOperationException>(() => failing.Completion.WaitAsync(Limits.Call));

        var (size, waits) = Assert.Single(observer.Batches);
        Assert.Equal(2, size);
        Assert.Equal([5.0, 2.0], waits);
        Assert.Equal([1], observer.Failed);
    }

    [Fact]
    public async Task StopAsync_QueuedPairs_AreRunBeforeTheLoopEnds()
    {
        var (batcher, _, _) = Create(maxBatchSize: 2, delayMs: 1000);
        var pairs = Enumerable.Range(0, 3).Select(i => Pair(i)).ToArray();
        foreach (var pair in pairs)
        {
            await batcher.EnqueueAsync(pair, CancellationToken.None);
        }

        await batcher.StopAsync().WaitAsync(Limits.Call);

        Assert.All(pairs, p => Assert.True(p.Completion.IsCompletedSuccessfully));
        await batcher.DisposeAsync();
    }

    [Fact]
    public async Task StopAsync_ForcedWhileBatchIsForming_EveryHeldPairIsAnswered()
    {
        var (batcher, _, _) = Create(maxBatchSize: 8, delayMs: 60_000);
        var pairs = new[] { Pair(1), Pair(2) };
        foreach (var pair in pairs)
        {
            await batcher.EnqueueAsync(pair, CancellationToken.None);
        }

        using var forced = new CancellationTokenSource();
        await forced.CancelAsync();
        await batcher.StopAsync(forced.Token).WaitAsync(Limits.Call);

        // Run or failed with the reason, but never left waiting.
        await Task.WhenAll(pairs.Select(p => p.Completion.ContinueWith(_ => { }, TaskScheduler.Default))).WaitAsync(Limits.Call);
        Assert.All(pairs, p => Assert.True(p.Completion.IsCompleted));
        await batcher.DisposeAsync();
    }

    [Fact]
    public async Task AbandonAsync_BatchRunning_EndsItThroughTheMatcherAndFailsWhatIsQueued()
    {
        var (batcher, matcher, _) = Create(maxBatchSize: 1, delayMs: 0);
        matcher.Gate = new SemaphoreSlim(0);
        var pairs = Enumerable.Range(0, 3).Select(i => Pair(i)).ToArray();
        foreach (var pair in pairs)
        {
            await batcher.EnqueueAsync(pair, CancellationToken.None);
        }

        Assert.True(await matcher.Entered.WaitAsync(Limits.Call));
        await batcher.AbandonAsync().WaitAsync(Limits.Call);

        // The running batch was ended, not waited for (its gate never opened); nothing queued was run.
        Assert.True(matcher.Terminated);
        Assert.Empty(matcher.Batches);
        foreach (var pair in pairs)
        {
            var error = await Assert.ThrowsAnyAsync<OperationCanceledException>(() => pair.Completion);
            Assert.Contains("shutting down", error.Message, StringComparison.Ordinal);
        }

        await batcher.DisposeAsync();
    }

    private static (PairBatcher Batcher, FakeMatcher Matcher, FakeTimeProvider Time) Create(int maxBatchSize, double delayMs, int capacity = 64)
    {
        var time = new FakeTimeProvider();
        var matcher = new FakeMatcher(maxBatchSize);
        var options = new BatchingOptions { MaxBatchSize = maxBatchSize, MaxBatchDelayMs = delayMs, QueueCapacity = capacity };
        var batcher = new PairBatcher(matcher, options, time, NullLogger<PairBatcher>.Instance);
        batcher.Start();
        return (batcher, matcher, time);
    }

    private static PairRequest Pair(int sequence, CancellationToken stream = default) =>
        new(Frame(sequence), Frame(sequence), 0f, 0, stream);

    private static PreparedFrame Frame(int sequence) =>
        new(ArrayPool<float>.Shared.Rent(4), FrameMapping.Create(2, 2, 2, 2, rotated: false, letterbox: false), (ulong)sequence, 0, 0);

    private sealed class RecordingObserver : IBatchObserver
    {
        public List<(int Size, double[] WaitsMs)> Batches { get; } = [];

        public List<int> Failed { get; } = [];

        public void BatchRan(int size, TimeSpan inference, ReadOnlySpan<TimeSpan> queueWaits)
        {
            var waits = new double[queueWaits.Length];
            for (var i = 0; i < waits.Length; i++)
            {
                waits[i] = Math.Round(queueWaits[i].TotalMilliseconds, 3);
            }

            Batches.Add((size, waits));
        }

        public void BatchFailed(int size) => Failed.Add(size);
    }

    private sealed class FakeMatcher(int maxBatchSize) : IPairMatcher
    {
        public List<int[]> Batches { get; } = [];

        public int[] BatchSizes => [.. Batches.Select(b => b.Length)];

        public SemaphoreSlim? Gate { get; set; }

        public SemaphoreSlim Entered { get; } = new(0);

        public int FailOnSequence { get; set; } = -1;

        public ModelManifest Manifest { get; } = new() { Name = "fake" };

        public string ExecutionProvider => "fake";

        public int MaxBatchSize => maxBatchSize;

        public ModelWork Work { get; } = new();

        public bool Terminated { get; private set; }

        public void Match(ReadOnlySpan<PairInput> batch, Span<PairMatchResult> results)
        {
            Entered.Release();
            Gate?.Wait(Limits.Call);
            if (Terminated)
            {
                throw new InvalidOperationException("terminated");
            }

            var sequences = new int[batch.Length];
            for (var i = 0; i < batch.Length; i++)
            {
                sequences[i] = (int)batch[i].Frame0.Sequence;
                if (sequences[i] == FailOnSequence)
                {
                    throw new InvalidOperationException("injected failure");
                }

                results[i] = new PairMatchResult([0f, 0f], [0f, 0f], [sequences[i]]);
            }

            lock (Batches)
            {
                Batches.Add(sequences);
            }
        }

        /// <summary>As ONNX Runtime's terminate flag: the running call ends (here: its gate opens and it throws).</summary>
        public void Terminate()
        {
            Terminated = true;
            Gate?.Release(int.MaxValue / 2);
        }

        public void Dispose()
        {
        }
    }
}
