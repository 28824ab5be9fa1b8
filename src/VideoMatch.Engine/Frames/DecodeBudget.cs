namespace VideoMatch.Engine.Frames;

/// <summary>
/// Bytes that image decodes may hold at once, and how many may run, server-wide. A decode reserves its buffer's
/// size (from the image's header) before it starts and returns it when done; when the budget is spent or every
/// decode slot is busy, decodes wait in arrival order without holding a thread, so a burst of large images slows
/// its senders instead of growing memory or starving the thread pool (health checks keep answering). One decode
/// larger than the whole budget runs alone.
/// </summary>
public sealed class DecodeBudget
{
    private readonly Lock _lock = new();
    private readonly LinkedList<(long Bytes, TaskCompletionSource Granted)> _waiting = new();
    private readonly int _slots;
    private long _available;
    private int _running;

    /// <param name="concurrent">Decodes that may run at once; default: one per processor.</param>
    public DecodeBudget(long bytes, int concurrent = 0)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(bytes);
        ArgumentOutOfRangeException.ThrowIfNegative(concurrent);
        Capacity = bytes;
        _available = bytes;
        _slots = concurrent > 0 ? concurrent : Environment.ProcessorCount;
    }

    public long Capacity { get; }

    /// <summary>Bytes reserved now.</summary>
    public long InUse
    {
        get
        {
            lock (_lock)
            {
                return Capacity - _available;
            }
        }
    }

    /// <summary>Waits until <paramref name="bytes"/> are free (or the token fires), and holds them until the lease is disposed.</summary>
    public async ValueTask<Lease> ReserveAsync(long bytes, CancellationToken cancellationToken)
    {
        bytes = Math.Clamp(bytes, 0, Capacity);
        LinkedListNode<(long Bytes, TaskCompletionSource Granted)> node;
        lock (_lock)
        {
            if (_waiting.Count == 0 && _available >= bytes && _running < _slots)
            {
                _available -= bytes;
                _running++;
                return new Lease(this, bytes);
            }

            node = _waiting.AddLast((bytes, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)));
        }

        using (cancellationToken.Register(() => Abandon(node, cancellationToken)))
        {
            await node.Value.Granted.Task.ConfigureAwait(false);
        }

        return new Lease(this, bytes);
    }

    private void Abandon(LinkedListNode<(long Bytes, TaskCompletionSource Granted)> node, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            if (node.List is null)
            {
                return; // Granted first: the lease is the caller's.
            }

            _waiting.Remove(node);
            GrantWaiting();
        }

        node.Value.Granted.TrySetCanceled(cancellationToken);
    }

    private void Return(long bytes)
    {
        lock (_lock)
        {
            _available += bytes;
            _running--;
            GrantWaiting();
        }
    }

    private void GrantWaiting()
    {
        while (_waiting.First is { } first && _available >= first.Value.Bytes && _running < _slots)
        {
            _available -= first.Value.Bytes;
            _running++;
            _waiting.RemoveFirst();
            first.Value.Granted.TrySetResult();
        }
    }

    /// <summary>Bytes held for one decode; disposing returns them (once).</summary>
    public sealed class Lease : IDisposable
    {
        private DecodeBudget? _budget;

        internal Lease(DecodeBudget budget, long bytes) => (_budget, Bytes) = (budget, bytes);

        public long Bytes { get; }

        public void Dispose() => Interlocked.Exchange(ref _budget, null)?.Return(Bytes);
    }
}
