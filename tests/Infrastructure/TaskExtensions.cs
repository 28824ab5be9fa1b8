using System.Runtime.CompilerServices;

namespace VideoMatch.Tests;

/// <summary>
/// Bounds an await by <see cref="Limits.Call"/> (as grpc-dotnet's test TaskExtensions do), failing with the test
/// method, file and line that waited, so a stuck await names itself long before the run's hang timeout.
/// </summary>
internal static class TaskExtensions
{
    public static async Task DefaultTimeout(this Task task, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        try
        {
            await task.WaitAsync(Limits.Call);
        }
        catch (TimeoutException e)
        {
            throw Named(e, caller, file, line);
        }
    }

    public static async Task<T> DefaultTimeout<T>(this Task<T> task, [CallerMemberName] string caller = "", [CallerFilePath] string file = "", [CallerLineNumber] int line = 0)
    {
        try
        {
            return await task.WaitAsync(Limits.Call);
        }
        catch (TimeoutException e)
        {
            throw Named(e, caller, file, line);
        }
    }

    private static TimeoutException Named(TimeoutException inner, string caller, string file, int line) =>
        new($"{caller} ({Path.GetFileName(file)}:{line}) waited {Limits.Call.TotalSeconds:0} s (Limits.Call) for a task that never finished.", inner);
}
