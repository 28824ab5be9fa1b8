using VideoMatch.Engine.Frames;
using VideoMatch.Tests;

namespace VideoMatch.Engine.Tests.Frames;

public sealed class DecodeBudgetTests
{
    [Fact]
    public async Task ReserveAsync_BudgetSpent_WaitsInOrderUntilReturned()
    {
        var budget = new DecodeBudget(100);
        var first = await budget.ReserveAsync(70, CancellationToken.None);

        var second = budget.ReserveAsync(50, CancellationToken.None).AsTask();
        var third = budget.ReserveAsync(10, CancellationToken.None).AsTask();

        // The small one fits, but waits behind the one that came first: large decodes are not starved.
        Assert.False(second.IsCompleted);
        Assert.False(third.IsCompleted);
        first.Dispose();
        using var secondLease = await second.WaitAsync(Limits.Call);
        using var thirdLease = await third.WaitAsync(Limits.Call);
        Assert.Equal(60, budget.InUse);
    }

    [Fact]
    public async Task ReserveAsync_CancelledWhileWaiting_ThrowsAndLetsTheNextThrough()
    {
        var budget = new DecodeBudget(100);
        using var held = await budget.ReserveAsync(90, CancellationToken.None);
        using var cancel = new CancellationTokenSource();
        var waiting = budget.ReserveAsync(50, cancel.Token).AsTask();
        var small = budget.ReserveAsync(10, CancellationToken.None).AsTask();

        await cancel.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => waiting.WaitAsync(Limits.Call));
        using var smallLease = await small.WaitAsync(Limits.Call);
        Assert.Equal(100, budget.InUse);
    }

    [Fact]
    public async Task ReserveAsync_EverySlotBusy_WaitsForOneWhateverTheBytes()
    {
        var budget = new DecodeBudget(1_000, concurrent: 2);
        var first = await budget.ReserveAsync(1, CancellationToken.None);
        using var second = await budget.ReserveAsync(1, CancellationToken.None);

        var third = budget.ReserveAsync(1, CancellationToken.None).AsTask();

        Assert.False(third.IsCompleted);
        first.Dispose();
        using var thirdLease = await third.WaitAsync(Limits.Call);
    }

    [Fact]
    public async Task ReserveAsync_LargerThanTheWholeBudget_RunsAlone()
    {
        var budget = new DecodeBudget(100);

        using var lease = await budget.ReserveAsync(1_000, CancellationToken.None).AsTask().WaitAsync(Limits.Call);

        Assert.Equal(100, budget.InUse);
        lease.Dispose();
        lease.Dispose();
        Assert.Equal(0, budget.InUse);
    }
}
