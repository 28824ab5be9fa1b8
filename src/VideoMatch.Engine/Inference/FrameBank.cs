using System.Runtime.InteropServices;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;
using VideoMatch.Engine.Frames;

namespace VideoMatch.Engine.Inference;

/// <summary>
/// A fixed number of feature slots on the inference device (pinned host memory on CPU, CUDA memory from ONNX
/// Runtime's allocator on CUDA), allocated once. The encoder writes a frame's features straight into its slot, the
/// matcher reads the whole bank and gathers its pairs' slots inside the graph, so features never move.
/// </summary>
/// <remarks>
/// A slot belongs to its frame (<see cref="PreparedFrame.Features"/>) and returns when the frame is released. When
/// no slot is free, the least recently used slot not needed by the running batch is evicted: its frame loses its
/// cached features and is encoded again if a later pair uses it. (Making readers wait for a slot instead could
/// deadlock: with as many streams as slots, every slot can hold a stream's previous frame, each waiting for its
/// next one.) Allocation and eviction run on the batcher's thread; frees come from any thread.
/// </remarks>
internal sealed class FrameBank : IDisposable
{
    private readonly Lock _lock = new();
    private readonly BankFeature[] _features;
    private readonly OrtMemoryInfo _memory;
    private readonly float[][] _host;
    private readonly OrtMemoryAllocation[] _device;
    private readonly OrtValue[] _whole;
    private readonly Dictionary<(int Start, int Count), OrtValue[]> _views = [];
    private readonly BankSlot?[] _slots;
    private readonly long[] _lastUse;
    private readonly ModelWork _work;
    private int _inUse;
    private bool _disposed;

    /// <param name="allocator">CUDA: the allocator of the session that reads the bank; null: pinned host memory.</param>
    public FrameBank(IReadOnlyList<BankFeature> features, int capacity, OrtAllocator? allocator, ModelWork work)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(capacity);
        _features = [.. features];
        Capacity = capacity;
        _work = work;
        _slots = new BankSlot?[capacity];
        _lastUse = new long[capacity];
        _host = new float[_features.Length][];
        _device = new OrtMemoryAllocation[_features.Length];
        _whole = new OrtValue[_features.Length];
        _memory = allocator?.Info ?? OrtMemoryInfo.DefaultInstance;
        try
        {
            for (var f = 0; f < _features.Length; f++)
            {
                var elements = checked(_features[f].SlotElements * capacity);
                if (allocator is null)
                {
                    _host[f] = GC.AllocateArray<float>(checked((int)elements), pinned: true);
                }
                else
                {
                    _device[f] = allocator.Allocate(checked((uint)(elements * sizeof(float))));
                }

                _whole[f] = View(f, 0, capacity);
            }
        }
        catch
        {
            Dispose();
            throw;
        }

        work.Bank = () => (Volatile.Read(ref _inUse), Capacity);
    }

    public int Capacity { get; }

    /// <summary>Slots holding features now.</summary>
    public int InUse => Volatile.Read(ref _inUse);

    /// <summary>Bytes of one slot (all features of one frame).</summary>
    public long BytesPerSlot => _features.Sum(f => f.SlotElements) * sizeof(float);

    /// <summary>The whole bank of each feature, (capacity, C, h, w): the matcher's inputs.</summary>
    public ReadOnlySpan<OrtValue> Whole => _whole;

    /// <summary>Slots [start, start + count) of each feature: where an encoder run writes.</summary>
    public OrtValue[] Views(int start, int count)
    {
        if (!_views.TryGetValue((start, count), out var views))
        {
            views = new OrtValue[_features.Length];
            for (var f = 0; f < views.Length; f++)
            {
                views[f] = View(f, start, count);
            }

            _views[(start, count)] = views;
        }

        return views;
    }

    /// <summary>The slot index of a frame's cached features in this bank, or −1 (and marks it used by this batch).</summary>
    public int Find(PreparedFrame frame, long batch)
    {
        if (frame.Features is BankSlot slot && ReferenceEquals(slot.Bank, this) && !slot.IsFreed)
        {
            _lastUse[slot.Index] = batch;
            return slot.Index;
        }

        return -1;
    }

    /// <summary>
    /// Reserves up to <paramref name="wanted"/> free slots in a row for batch <paramref name="batch"/>, evicting the
    /// least recently used slot of an earlier batch when none is free. Returns how many (at least 1), from <paramref name="start"/>.
    /// </summary>
    /// <exception cref="InvalidOperationException">Every slot is needed by this batch (the bank is smaller than a batch needs).</exception>
    public int Reserve(int wanted, long batch, out int start)
    {
        while (true)
        {
            lock (_lock)
            {
                var count = FirstFreeRun(wanted, out start);
                if (count > 0)
                {
                    for (var i = start; i < start + count; i++)
                    {
                        _slots[i] = BankSlot.Reserved;
                        _lastUse[i] = batch;
                    }

                    _inUse += count;
                    return count;
                }
            }

            EvictOldest(batch);
        }
    }

    /// <summary>Frees slots reserved with <see cref="Reserve"/> that were never assigned to a frame (self-checks).</summary>
    public void ReleaseReserved(int start, int count)
    {
        lock (_lock)
        {
            for (var i = start; i < start + count; i++)
            {
                if (ReferenceEquals(_slots[i], BankSlot.Reserved))
                {
                    _slots[i] = null;
                    _inUse--;
                }
            }
        }
    }

    /// <summary>Gives frame <paramref name="frame"/> the reserved slot <paramref name="index"/>, which now holds its features.</summary>
    public void Assign(int index, PreparedFrame frame)
    {
        var slot = new BankSlot(this, index) { Owner = frame };
        lock (_lock)
        {
            _slots[index] = slot;
        }

        // Whatever the frame held before (features of another model) goes, and is freed if it owns anything.
        frame.ExchangeFeatures(slot)?.Dispose();
    }

    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }

        _disposed = true;
        foreach (var views in _views.Values)
        {
            foreach (var view in views)
            {
                view.Dispose();
            }
        }

        foreach (var value in _whole)
        {
            value?.Dispose();
        }

        foreach (var allocation in _device)
        {
            allocation?.Dispose();
        }
    }

    /// <summary>Returns a slot (the frame was released or evicted); any thread, once per slot.</summary>
    internal void Free(BankSlot slot)
    {
        lock (_lock)
        {
            if (ReferenceEquals(_slots[slot.Index], slot))
            {
                _slots[slot.Index] = null;
                _inUse--;
            }
        }

        slot.Owner = null;
    }

    private OrtValue View(int feature, int start, int count)
    {
        var f = _features[feature];
        var bytes = f.SlotElements * sizeof(float);
        var origin = _host[feature] is { } host ? Marshal.UnsafeAddrOfPinnedArrayElement(host, 0) : _device[feature].DangerousGetHandle();
        long[] shape = [count, .. f.SlotShape];
        return OrtValue.CreateTensorValueWithData(_memory, TensorElementType.Float, shape, origin + (nint)(start * bytes), count * bytes);
    }

    /// <summary>The first run of free slots, as long as it is but at most <paramref name="wanted"/>. Under the lock.</summary>
    private int FirstFreeRun(int wanted, out int start)
    {
        for (var i = 0; i < Capacity; i++)
        {
            if (_slots[i] is not null)
            {
                continue;
            }

            var length = 1;
            while (length < wanted && i + length < Capacity && _slots[i + length] is null)
            {
                length++;
            }

            start = i;
            return length;
        }

        start = -1;
        return 0;
    }

    private void EvictOldest(long batch)
    {
        BankSlot? victim = null;
        lock (_lock)
        {
            var oldest = long.MaxValue;
            for (var i = 0; i < Capacity; i++)
            {
                if (_slots[i] is { } slot && !ReferenceEquals(slot, BankSlot.Reserved) && _lastUse[i] < batch && _lastUse[i] < oldest)
                {
                    (oldest, victim) = (_lastUse[i], slot);
                }
            }
        }

        if (victim is null)
        {
            throw new InvalidOperationException($"The frame bank's {Capacity} slots are all needed by one batch; set Inference:FrameBankSlots to at least twice Batching:MaxBatchSize.");
        }

        // The owner loses its cached features (it is encoded again if a later pair uses it); its slot comes back.
        victim.Evict();
        _work.Evicted();
    }
}

/// <summary>One feature tensor of a frame bank: its name and the shape of one slot (C, h, w).</summary>
internal sealed record BankFeature(string Name, long[] SlotShape)
{
    public long SlotElements => SlotShape.Aggregate(1L, (a, b) => a * b);
}

/// <summary>A frame's features in a <see cref="FrameBank"/>: owned by the frame, returned when it is released.</summary>
internal sealed class BankSlot(FrameBank? bank, int index) : IFrameFeatures
{
    /// <summary>Marks a slot reserved for a frame of the running batch before its features are written.</summary>
    public static readonly BankSlot Reserved = new(null, -1);

    private int _freed;
    private PreparedFrame? _owner;

    public FrameBank? Bank { get; } = bank;

    public int Index { get; } = index;

    public bool IsFreed => Volatile.Read(ref _freed) != 0;

    internal PreparedFrame? Owner { get => _owner; set => _owner = value; }

    /// <summary>The frame was released: the slot goes back.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _freed, 1) == 0)
        {
            Bank?.Free(this);
        }
    }

    /// <summary>The bank needs the slot: detach it from its frame (if the frame still holds it) and free it.</summary>
    internal void Evict()
    {
        _owner?.TryDetachFeatures(this);
        Dispose();
    }
}
