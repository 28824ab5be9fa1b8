namespace VideoMatch.Tests;

/// <summary>Where the checkout is, for tests that read its docs or run its tools.</summary>
internal static class Repository
{
    /// <summary>The folder holding VideoMatch.sln, found above the test binaries.</summary>
    public static string Root { get; } = Find();

    private static string Find()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "VideoMatch.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("The repository root (VideoMatch.sln) was not found above the test binaries.");
    }
}
