# The agent's own native code (N-API: one build serves Node 20 and the binary's Node 22).
{
  'targets': [
    {
      'target_name': 'page_out',
      'sources': ['agent/lib/native/page-out.c'],
    },
  ],
}
