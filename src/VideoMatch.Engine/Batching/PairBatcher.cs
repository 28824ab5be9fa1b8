using System.Threading.Channels;
using Microsoft.Extensions.Logging;
using VideoMatch.Engine.Inference;

namespace VideoMatch.Engine.Batching;

/// <summary>
/// The one batcher all streams share. Pairs enter a bounded channel; a single loop takes the oldest pair,
/// then more until the batch holds <see cref="BatchingOptions.MaxBatchSize"/> pairs or the oldest has waited
/// <see cref="BatchingOptions.MaxBatchDelay"/>, runs the model once, and completes each pair's task.
/// Pairs of cancelled streams are dropped when taken from the queue and never reach the model.
/// </summary>
public sealed partial class PairBatcher : IAsyncDisposable
{
    private readonly IPairMatcher _matcher;
    private readonly TimeProvider _time;
    private readonly ILogger<PairBatcher> _logger;
    private readonly Channel<PairRequest> _queue;
    private readonly int _maxBatchSize;
    private readonly long _maxDelayTicks;
    private readonly PairRequest[] _batch;
    private readonly PairInput[] _inputs;
    private readonly PairMatchResult[] _results;
    private readonly TimeSpan[] _waits;
    private readonly CancellationTokenSource _stopping = new();
    private CancellationTokenSource _deadline;
    private Task? _loop;
    private volatile bool _abandoned;
    private volatile bool _disposed;

    public PairBatcher(IPairMatcher matcher, BatchingOptions options, TimeProvider time, ILogger<PairBatcher> logger)
    {
        _matcher = matcher;
        _time = time;
        _logger = logger;
        _maxBatchSize = Math.Min(options.MaxBatchSize, matcher.MaxBatchSize);
        _maxDelayTicks = (long)(options.MaxBatchDelay.TotalSeconds * time.TimestampFrequency);
        _batch = new PairRequest[_maxBatchSize];
        _inputs = new PairInput[_maxBatchSize];
        _results = new PairMatchResult[_maxBatchSize];
        _waits = new TimeSpan[_maxBatchSize];
        _deadline = new CancellationTokenSource(Timeout.InfiniteTimeSpan, time);
        // Bounded, Wait when full: a writer (one stream's reader loop) waits for room, so a stream that sends
        // faster than the model serves is slowed through HTTP/2 flow control; waiting writers are served in order.
        _queue = Channel.CreateBounded<PairRequest>(new BoundedChannelOptions(options.QueueCapacity)
        {
            FullMode = BoundedChannelFullMode.Wait,
            SingleReader = true,
            SingleWriter = false,
        });
    }

    /// <summary>Largest batch the loop forms (the smaller of the setting and the model's limit).</summary>
    public int MaxBatchSize => _maxBatchSize;

    /// <summary>Pairs waiting for a batch.</summary>
    public int QueueLength => _queue.Reader.Count;

    /// <summary>Batches run so far.</summary>
    public long BatchesRun { get; private set; }

    /// <summary>Told about every batch from now on (null: nobody); set it after warm-up to leave warm-up out.</summary>
    public IBatchObserver? Observer { get; set; }

    /// <summary>False once the loop has ended on an unexpected error: the batcher serves nothing more.</summary>
    public bool IsHealthy => _loop is not { IsFaulted: true };

    public void Start() => _loop ??= Task.Run(RunAsync);

    /// <summary>Queues a pair, waiting for room while the queue is full. A pair that never gets in is cancelled.</summary>
    /// <exception cref="ChannelClosedException">The batcher is stopping.</exception>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> fired while waiting for room.</exception>
    public async ValueTask EnqueueAsync(PairRequest pair, CancellationToken cancellationToken)
    {
        pair.EnqueuedAt = _time.GetTimestamp();
        try
        {
            await _queue.Writer.WriteAsync(pair, cancellationToken).ConfigureAwait(false);
            pair.WatchCancellation();
        }
        catch
        {
            pair.Cancel();
            throw;
        }
    }

    /// <summary>Queues a pair if there is room now.</summary>
    public bool TryEnqueue(PairRequest pair)
    {
        pair.EnqueuedAt = _time.GetTimestamp();
        if (!_queue.Writer.TryWrite(pair))
        {
            return false;
        }

        pair.WatchCancellation();
        return true;
    }

    /// <summary>Stops taking pairs, runs what is queued, and waits for the loop to end.</summary>
    public async Task StopAsync(CancellationToken cancellationToken = default)
    {
        _queue.Writer.TryComplete();
        if (_loop is null)
        {
            return;
        }

        using var registration = cancellationToken.Register(_stopping.Cancel);
        await _loop.ConfigureAwait(false);
    }

    /// <summary>
    /// Stops at once, for a shutdown in which no caller waits any more: the running batch is ended through the
    /// matcher's <see cref="IPairMatcher.Terminate"/> and what is queued fails, instead of being run.
    /// </summary>
    public Task AbandonAsync(CancellationToken cancellationToken = default)
    {
        if (_disposed)
        {
            return Task.CompletedTask;
        }

        _abandoned = true;
        _queue.Writer.TryComplete();
        _matcher.Terminate();
        _stopping.Cancel();
        return StopAsync(cancellationToken);
    }

    public async ValueTask DisposeAsync()
    {
        if (_disposed)
        {
            return;
        }

        await StopAsync().ConfigureAwait(false);
        _disposed = true;
        _stopping.Dispose();
        _deadline.Dispose();
    }

    private async Task RunAsync()
    {
        var reader = _queue.Reader;
        try
        {
            while (await reader.WaitToReadAsync(_stopping.Token).ConfigureAwait(false))
            {
                var count = await FillBatchAsync(reader).ConfigureAwait(false);
                if (count > 0)
                {
                    Execute(count);
                }
            }
        }
        catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
        {
            // Forced stop: fail what is left rather than leave callers waiting.
        }

        while (reader.TryRead(out var left))
        {
            left.Fail(new OperationCanceledException("The server is shutting down."));
        }
    }

    private async ValueTask<int> FillBatchAsync(ChannelReader<PairRequest> reader)
    {
        var count = 0;
        long deadline = 0;
        try
        {
            while (count < _maxBatchSize)
            {
                if (reader.TryRead(out var pair))
                {
                    if (pair.Cancellation.IsCancellationRequested || !pair.TryTake())
                    {
                        // Cancelled in the queue (already answered), or just now.
                        pair.Cancel();
                        continue;
                    }

                    if (count == 0)
                    {
                        deadline = pair.EnqueuedAt + _maxDelayTicks;
                    }

                    _batch[count++] = pair;
                    continue;
                }

                if (count == 0)
                {
                    break;
                }

                if (!await WaitForMoreAsync(reader, deadline).ConfigureAwait(false))
                {
                    break;
                }
            }
        }
        catch (OperationCanceledException) when (_stopping.IsCancellationRequested)
        {
            // Forced stop while a batch was forming: its pairs are answered with the reason, not left waiting.
            for (var i = 0; i < count; i++)
            {
                _batch[i].Fail(new OperationCanceledException("The server is shutting down."));
            }

            _batch.AsSpan(0, count).Clear();
            throw;
        }

        return RemoveCancelled(count);
    }

    /// <summary>Drops pairs whose stream was cancelled while the batch was forming; returns the pairs left.</summary>
    private int RemoveCancelled(int count)
    {
        var kept = 0;
        for (var i = 0; i < count; i++)
        {
            var pair = _batch[i];
            if (pair.Cancellation.IsCancellationRequested)
            {
                pair.Cancel();
            }
            else
            {
                _batch[kept++] = pair;
            }
        }

        _batch.AsSpan(kept, count - kept).Clear();
        return kept;
    }

    /// <summary>Waits until a pair arrives (true) or the batch's deadline passes or the queue closes (false).</summary>
    private async ValueTask<bool> WaitForMoreAsync(ChannelReader<PairRequest> reader, long deadline)
    {
        var remaining = _time.GetElapsedTime(_time.GetTimestamp(), deadline);
        if (remaining <= TimeSpan.Zero)
        {
            return false;
        }

        if (!_deadline.TryReset())
        {
            _deadline.Dispose();
            _deadline = new CancellationTokenSource(Timeout.InfiniteTimeSpan, _time);
        }

        _deadline.CancelAfter(remaining);
        // Time may have moved on between reading the clock and arming the timer: the deadline decides.
        if (_time.GetTimestamp() >= deadline)
        {
            return false;
        }

        using var linked = CancellationTokenSource.CreateLinkedTokenSource(_deadline.Token, _stopping.Token);
        try
        {
            return await reader.WaitToReadAsync(linked.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (_deadline.IsCancellationRequested && !_stopping.IsCancellationRequested)
        {
            return false;
        }
    }

    private void Execute(int count)
    {
        var batch = _batch.AsSpan(0, count);
        var started = _time.GetTimestamp();
        try
        {
            for (var i = 0; i < count; i++)
            {
                _inputs[i] = batch[i].Input;
            }

            _matcher.Match(_inputs.AsSpan(0, count), _results.AsSpan(0, count));
            var inferenceMs = _time.GetElapsedTime(started).TotalMilliseconds;
            BatchesRun++;
            LogBatch(count, inferenceMs);
            for (var i = 0; i < count; i++)
            {
                _waits[i] = _time.GetElapsedTime(batch[i].EnqueuedAt, started);
            }

            Observer?.BatchRan(count, TimeSpan.FromMilliseconds(inferenceMs), _waits.AsSpan(0, count));
            for (var i = 0; i < count; i++)
            {
                batch[i].Complete(new PairOutcome(_results[i], new BatchTimings(_waits[i].TotalMilliseconds, inferenceMs, count)));
            }
        }
        catch (Exception e) when (_abandoned)
        {
            LogBatchAbandoned(count);
            foreach (var pair in batch)
            {
                pair.Fail(new OperationCanceledException("The server is shutting down.", e));
            }
        }
        catch (Exception e)
        {
            LogBatchFailed(e, count);
            Observer?.BatchFailed(count);
            var error = new InvalidOperationException($"The model failed on a batch of {count} pairs: {e.Message}", e);
            foreach (var pair in batch)
            {
                pair.Fail(error);
            }
        }
        finally
        {
            batch.Clear();
            _inputs.AsSpan(0, count).Clear();
            _results.AsSpan(0, count).Clear();
        }
    }

    [LoggerMessage(Level = LogLevel.Debug, Message = "Ran a batch of {BatchSize} pairs in {InferenceMs:F1} ms")]
    private partial void LogBatch(int batchSize, double inferenceMs);

    [LoggerMessage(Level = LogLevel.Information, Message = "Shutdown: the batch of {BatchSize} pairs still running was ended; no call waited for it")]
    private partial void LogBatchAbandoned(int batchSize);

    [LoggerMessage(Level = LogLevel.Error, Message = "The model failed on a batch of {BatchSize} pairs; those pairs fail, the server goes on")]
    private partial void LogBatchFailed(Exception error, int batchSize);
}
